// Names a new conversation after its first exchange, in the background.
import { completeText, type ModelClientOptions } from '../llm/model-client.ts';
import type { Logger } from '../logger.ts';
import type { EventPublisher } from '../services/live-events.ts';
import type { ModelSettings } from '../services/user-config.ts';
import type { Store } from '../store/store.ts';

const TITLE_INPUT_CHARS = 500;
const MAX_TITLE_CHARS = 80;
/**
 * Titles are background work: at most this many are requested at once per instance, the rest
 * wait their turn. Replies that end together (a burst of new conversations) otherwise send a
 * burst of title requests that competes with the live streams for the CPU.
 */
const MAX_CONCURRENT_TITLES = 4;

export class TitleWriter {
  private titling = 0;
  private readonly queue: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    private readonly model: ModelClientOptions,
    /** Aborted when the service shuts down: queued and running titles give up. */
    private readonly closing: AbortSignal,
    private readonly logger: Logger,
    private readonly events: EventPublisher,
  ) {}

  /** A short title from the start of the first exchange, saved only if there is still none. */
  name(conversationId: string, firstInput: string, settings: ModelSettings): Promise<void> {
    return this.inTurn(() => this.write(conversationId, firstInput, settings));
  }

  private async inTurn(task: () => Promise<void>): Promise<void> {
    // A finishing title hands its slot straight to the next in line.
    if (this.titling >= MAX_CONCURRENT_TITLES) await new Promise<void>((resolve) => this.queue.push(resolve));
    else this.titling++;
    try {
      await task();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.titling--;
    }
  }

  private async write(conversationId: string, firstInput: string, settings: ModelSettings): Promise<void> {
    if (this.closing.aborted) return;
    const input = head(firstInput, TITLE_INPUT_CHARS);
    let title = '';
    if (settings.baseUrl !== null) {
      const request = {
        baseUrl: settings.baseUrl,
        custom: settings.custom,
        apiKey: settings.apiKey,
        model: settings.model,
        maxTokens: 24,
        temperature: 0.2,
        messages: [
          { role: 'system' as const, content: 'Write a title of at most six words for a conversation that starts with the user message below. Answer with the title only.' },
          { role: 'user' as const, content: input },
        ],
      };
      // A signal of its own: the client leaves its abort listener on the signal it is given, and
      // on the service's long-lived one that kept a listener per titled conversation forever.
      const titleRequest = new AbortController();
      const onShutdown = () => titleRequest.abort(this.closing.reason);
      this.closing.addEventListener('abort', onShutdown, { once: true });
      title = await completeText(request, titleRequest.signal, this.model)
        .catch((error) => {
          this.logger.warn({ err: error, conversationId }, 'title generation failed; using the first words');
          return '';
        })
        .finally(() => this.closing.removeEventListener('abort', onShutdown));
    }
    title = cleanTitle(title) || cleanTitle(input.split(/\s+/).slice(0, 6).join(' '));
    if (!title) return;
    const titled = await this.store.setTitleIfUntitled(conversationId, title);
    if (!titled) return;
    if (titled.conversationSeq !== null) this.events.conversation(conversationId, [{ seq: titled.conversationSeq, kind: 'CONVERSATION_UPDATED' }]);
    if (titled.viewerSeq !== null) this.events.viewer(titled.userId, { seq: titled.viewerSeq, kind: 'CONVERSATION_UPDATED', conversationId });
  }
}

function cleanTitle(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim().replace(/^["'«“]+|["'»”.]+$/g, '').trim();
  return line.length > MAX_TITLE_CHARS ? `${head(line, MAX_TITLE_CHARS - 1).trimEnd()}…` : line;
}

/** The first `units` UTF-16 units of `text`, one fewer where the cut would split a surrogate pair. */
function head(text: string, units: number): string {
  const splitsPair = /[\uD800-\uDBFF]/.test(text.charAt(units - 1)) && /[\uDC00-\uDFFF]/.test(text.charAt(units));
  return text.slice(0, splitsPair ? units - 1 : units);
}
