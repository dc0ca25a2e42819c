import type { Viewer } from '../auth.ts';
import type { ChatService } from '../chat/chat-service.ts';
import type { ModelPresets } from '../llm/presets.ts';
import type { ConversationService } from '../services/conversations.ts';
import type { LiveEvents } from '../services/live-events.ts';
import type { MessagePageLoader } from '../services/message-pages.ts';
import type { MessageService } from '../services/messages.ts';
import type { SiblingLoader } from '../services/siblings.ts';
import type { UserConfigService } from '../services/user-config.ts';
import type { Db } from '../store/database.ts';

export interface Services {
  conversations: ConversationService;
  messages: MessageService;
  chat: ChatService;
  liveEvents: LiveEvents;
  userConfigs: UserConfigService;
  presets: ModelPresets;
}

/** What every resolver receives: who asks, and what it may use. */
export interface Context {
  viewer: Viewer;
  db: Db;
  services: Services;
  messagePages: MessagePageLoader;
  siblings: SiblingLoader;
  /** Aborted when the server shuts down: subscriptions end on it. */
  shutdown: AbortSignal;
}
