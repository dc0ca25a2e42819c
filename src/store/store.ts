// The storage port: everything the domain services read and write, in their words. One adapter
// per way of talking to the database (Prisma on every provider; PostgreSQL's named statements for
// the few that every reply runs). Services get a Store and never see a client or SQL.
// Every read that takes a userId returns only that user's rows.
import type { FinalStatus, MessageStatus, Role } from '../model.ts';
import type { Conversation, ConversationQuery, JsonObject, JsonValue, Message, MessageQuery, UserConfigRow } from './rows.ts';

/** Rows to read: `limit + 1` after `after` and before `before`, from the end when `fromEnd`. */
export interface PageWindow<Key> {
  limit: number;
  fromEnd: boolean;
  after?: Key;
  before?: Key;
}

/** The list order of conversations: newest `updatedAt` first, then `id` descending. */
export interface ConversationKey {
  updatedAt: Date;
  id: string;
}

export interface ConversationChanges {
  title?: string | null;
  archived?: boolean;
}

/** Where a new message goes: under the active tip (undefined), as a new root (null), or under that message of the conversation. */
export type ParentChoice = string | null | undefined;

export interface NewMessage {
  role: Role;
  content: string;
  tokenCount: number | null;
  metadata?: JsonValue;
  /** Its branch becomes the active one. A message of another conversation or user: BAD_USER_INPUT. */
  parentId?: ParentChoice;
  clientMessageId?: string | null;
}

/** What sendMessage writes: the user's message and a STREAMING assistant message, all or nothing. */
export interface NewExchange {
  userId: string;
  /** null: a new conversation. */
  conversationId: string | null;
  content: string;
  tokenCount: number;
  clientMessageId: string | null;
  /** The assistant message's model and preset, read while the first writes go out. */
  settings: Promise<{ model: string; presetId: string | null }>;
  leaseMs: number;
  /** The user's message answers this one (undefined: the active tip). */
  parentId?: ParentChoice;
}

/** What regenerate writes: a STREAMING reply to the user message `parentId`, a sibling of its other replies. */
export interface NewReply {
  userId: string;
  conversationId: string;
  parentId: string;
  clientMessageId: string | null;
  settings: Promise<{ model: string; presetId: string | null }>;
  leaseMs: number;
}

export interface SavedExchange {
  conversation: Conversation;
  userMessage: Message;
  assistantMessage: Message;
}

/**
 * The event seqs a write handed out, in the statement or transaction that made its change visible:
 * `conversationSeq` for the conversation's (the last of them when it made several), `viewerSeq` for
 * its owner's list, where the write changed the list.
 */
export interface EventSeqs {
  conversationSeq: number | null;
  viewerSeq: number | null;
}

/** A newly saved exchange and its events: the user message's seq is one before the assistant's. */
export type NewSavedExchange = SavedExchange & EventSeqs;

/** What a clientMessageId created: an exchange, or one message with no reply (an edit of a system or assistant message). */
export type FoundExchange = Omit<SavedExchange, 'assistantMessage'> & { assistantMessage: Message | null };

/** A deleted subtree: its ids, oldest first, and the conversation with its new tip. */
export interface DeletedSubtree {
  conversation: Conversation;
  deletedIds: string[];
  conversationSeq: number;
}

/** How a reply's end was saved: whether this call saved it, and its event's seq. */
export interface SavedReplyEnd {
  count: number;
  /** null when nothing was saved. */
  eventSeq: number | null;
}

/** What a reply's end writes; null model, metadata and prompt tokens leave the saved ones. */
export interface ReplyEnd {
  status: FinalStatus;
  content: string;
  error: string | null;
  finishReason: string | null;
  model: string | null;
  metadata: JsonObject | null;
  promptTokens: number | null;
  completionTokens: number;
}

/** A reply's status and text as saved. */
export interface ReplyState {
  status: MessageStatus;
  error: string | null;
  content: string;
}

export interface ReplyStates {
  streaming: Set<string>;
  ended: Map<string, ReplyState>;
}

/** The history rows a prompt is built from. */
export type HistoryRow = Pick<Message, 'id' | 'seq' | 'role' | 'content' | 'tokenCount' | 'completionTokens' | 'status'>;

/** A user's settings as the API may change them. */
export type UserConfigChanges = Partial<Omit<UserConfigRow, 'userId' | 'createdAt' | 'updatedAt'>>;

export interface MessagePagesRequest {
  userId: string;
  conversationIds: string[];
  window: PageWindow<number>;
  /** Columns to read (the keys always come too), or undefined: every column. */
  columns?: ReadonlySet<string>;
}

export interface MessagePages {
  /** Each conversation's rows in window order, at most `limit + 1` each. */
  rows: Message[];
}

export interface ConversationStore {
  findConversation(userId: string, id: string, query?: ConversationQuery): Promise<Conversation | null>;
  /** Up to `limit + 1` conversations in list order (from the other end when `fromEnd`). */
  listConversations(userId: string, archived: boolean | null | undefined, window: PageWindow<ConversationKey>, query?: ConversationQuery): Promise<Conversation[]>;
  createConversation(userId: string, title: string | null, query?: ConversationQuery): Promise<{ conversation: Conversation; viewerSeq: number }>;
  /** null when the conversation is missing or not the user's. */
  updateConversation(userId: string, id: string, changes: ConversationChanges, query?: ConversationQuery): Promise<({ conversation: Conversation } & EventSeqs) | null>;
  /** Deletes the conversation and its messages; null when it is missing or not the user's. */
  deleteConversation(userId: string, id: string): Promise<EventSeqs | null>;
  /** null when it has a title already, or is gone. */
  setTitleIfUntitled(conversationId: string, title: string): Promise<({ userId: string } & EventSeqs) | null>;
  /** The conversation's newest event seq; null when it is missing or not the user's. */
  conversationEventSeq(userId: string, id: string): Promise<number | null>;
  /** The user's newest viewer event seq, -1 before the first. */
  viewerEventSeq(userId: string): Promise<number>;
  /** The newest event seqs of many conversations (whoever owns them: for the followers' sweep); a missing one is absent. */
  conversationEventSeqs(conversationIds: string[]): Promise<Map<string, number>>;
  /** The newest viewer event seqs of many users; one before any is absent. */
  viewerEventSeqs(userIds: string[]): Promise<Map<string, number>>;
  /** The conversation's STREAMING messages, oldest first. */
  generatingMessages(userId: string, conversationId: string, query?: MessageQuery): Promise<Message[]>;
}

export interface MessageStore {
  /** Appends a message with the next seq, to a new conversation when the id is null. NOT_FOUND for a foreign one. */
  appendMessage(userId: string, conversationId: string | null, message: NewMessage, query?: MessageQuery): Promise<{ message: Message } & EventSeqs>;
  /** Deletes every message; null when the conversation is missing or not the user's. */
  clearMessages(userId: string, conversationId: string): Promise<{ count: number; conversationSeq: number } | null>;
  /** The newest `take` messages, oldest first; null when the conversation is not the user's. */
  recentMessages(userId: string, conversationId: string, take: number): Promise<Message[] | null>;
  /** Up to `take` messages before `beforeSeq`, newest first. */
  messagesBefore(userId: string, conversationId: string, beforeSeq: number, take: number): Promise<HistoryRow[]>;
  /** How many messages with one of `statuses` come before `beforeSeq`. */
  countMessagesBefore(userId: string, conversationId: string, beforeSeq: number, statuses: readonly MessageStatus[]): Promise<number>;
  messagePages(request: MessagePagesRequest): Promise<MessagePages>;
  countMessages(userId: string, conversationIds: string[]): Promise<Map<string, number>>;
  findMessage(userId: string, id: string, query?: MessageQuery): Promise<Message | null>;
}

export interface ReplyStore {
  /** Throws DuplicateKeyError('clientMessageId') when the user already used the key, NOT_FOUND for a foreign conversation. */
  saveExchange(exchange: NewExchange): Promise<NewSavedExchange>;
  /** What the user's clientMessageId created, if anything. */
  findExchange(userId: string, clientMessageId: string): Promise<FoundExchange | null>;
  /** Throws DuplicateKeyError('clientMessageId') when the user already used the key, NOT_FOUND when the parent is gone. */
  saveReply(reply: NewReply): Promise<NewSavedExchange>;
  /** The user's message's state; null when it is missing or not theirs. */
  replyState(userId: string, messageId: string): Promise<ReplyState | null>;
  /** The state of a message whatever its owner; null when it is gone. */
  replyStateById(messageId: string): Promise<ReplyState | null>;
  /** Which of the messages, whatever their owner, still stream and how the others ended; an id in neither is gone. */
  replyStatesById(messageIds: string[]): Promise<ReplyStates>;
  replyOwner(messageId: string): Promise<{ userId: string; conversationId: string; content: string } | null>;
  /** Saves how a reply of the conversation ended, unless it already ended. */
  saveReplyEnd(messageId: string, conversationId: string, end: ReplyEnd): Promise<SavedReplyEnd>;
  /** The prompt metadata of a reply that someone else ended. */
  saveReplyPrompt(messageId: string, metadata: JsonObject, promptTokens: number | null): Promise<void>;
  renewLeases(messageIds: string[], until: Date): Promise<void>;
  /** Saves the text of a reply still STREAMING. */
  checkpointReply(messageId: string, content: string): Promise<void>;
  /** Ids of STREAMING replies whose lease expired (all of them with `everything`). */
  orphanedReplies(everything: boolean, limit: number): Promise<string[]>;
}

/** The tree of each conversation's messages; every method moves the conversation's event seq. */
export interface BranchStore {
  /** Makes the path through the user's message active, to the newest message below it; null when it is not theirs. */
  switchBranch(userId: string, messageId: string): Promise<{ conversation: Conversation; conversationSeq: number } | null>;
  /** Deletes the user's message and everything below it; null when it is not theirs. */
  deleteSubtree(userId: string, messageId: string): Promise<DeletedSubtree | null>;
  /** A new conversation holding a copy of the path root → the user's message; null when it is not theirs. */
  forkPath(userId: string, messageId: string, title: string | null | undefined): Promise<{ conversation: Conversation; viewerSeq: number } | null>;
  /** The ids of the user's message and everything below it, oldest first; empty when it is not theirs. */
  subtreeIds(userId: string, messageId: string): Promise<string[]>;
  /** The ids of the children of each (conversation, parent), oldest first, by `siblingKey`. */
  siblings(userId: string, parents: readonly { conversationId: string; parentId: string | null }[]): Promise<Map<string, string[]>>;
}

export interface UserConfigStore {
  userConfig(userId: string): Promise<UserConfigRow | null>;
  saveUserConfig(userId: string, changes: UserConfigChanges): Promise<UserConfigRow>;
}

export interface Store extends ConversationStore, MessageStore, ReplyStore, BranchStore, UserConfigStore {}

/** The key under which `siblings` lists the children of one parent (the roots: null) of a conversation. */
export function siblingKey(conversationId: string, parentId: string | null): string {
  return `${conversationId}\u0000${parentId ?? ''}`;
}
