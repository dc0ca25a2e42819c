// Which fields an operation selects below a resolver's field, for loaders that read only the
// columns those fields need.
import { Kind, type FieldNode, type GraphQLResolveInfo, type SelectionSetNode } from 'graphql';

/**
 * The names of the fields selected at `path` below the current field (e.g. ['edges', 'node']),
 * through fragments and inline fragments. `@skip`/`@include` are ignored: a field they drop only
 * makes the set larger, never wrong.
 */
export function selectedFields(info: GraphQLResolveInfo, path: readonly string[]): ReadonlySet<string> {
  // Every item of a list resolves the field with the same field nodes: walked once for all.
  let byPath = walked.get(info.fieldNodes);
  if (!byPath) walked.set(info.fieldNodes, (byPath = new Map()));
  const key = path.join('.');
  let fields = byPath.get(key);
  if (!fields) byPath.set(key, (fields = walk(info, path)));
  return fields;
}

const walked = new WeakMap<readonly FieldNode[], Map<string, ReadonlySet<string>>>();

function walk(info: GraphQLResolveInfo, path: readonly string[]): ReadonlySet<string> {
  let level: SelectionSetNode[] = info.fieldNodes.flatMap((node) => (node.selectionSet ? [node.selectionSet] : []));
  for (const name of path) level = fieldsOf(info, level).flatMap((field) => (field.name.value === name && field.selectionSet ? [field.selectionSet] : []));
  return new Set(fieldsOf(info, level).map((field) => field.name.value));
}

function fieldsOf(info: GraphQLResolveInfo, sets: SelectionSetNode[]) {
  const fields = [];
  const pending = [...sets];
  const seenFragments = new Set<string>();
  for (let set = pending.pop(); set; set = pending.pop()) {
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) fields.push(selection);
      else if (selection.kind === Kind.INLINE_FRAGMENT) pending.push(selection.selectionSet);
      else if (!seenFragments.has(selection.name.value)) {
        seenFragments.add(selection.name.value);
        const fragment = info.fragments[selection.name.value];
        if (fragment) pending.push(fragment.selectionSet);
      }
    }
  }
  return fields;
}
