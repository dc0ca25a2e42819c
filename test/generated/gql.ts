/* eslint-disable */
import * as types from './graphql.js';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  mutation UpdateUserConfig($input: UpdateUserConfigInput!) {\n    updateUserConfig(input: $input) { presetId model baseUrl hasApiKey maxTokens temperature systemPrompt contextTokens }\n  }\n": typeof types.UpdateUserConfigDocument,
    "\n  query Settings { userConfig { presetId model baseUrl hasApiKey maxTokens temperature systemPrompt contextTokens } modelPresets { id name model baseUrl } }\n": typeof types.SettingsDocument,
    "\n  query MessageDetails($id: ID!) {\n    conversation(id: $id) { title messages(last: 10) { edges { node { id role content status model finishReason promptTokens completionTokens error metadata } } } }\n  }\n": typeof types.MessageDetailsDocument,
    "\n  mutation DeleteConversation($id: ID!) { deleteConversation(id: $id) }\n": typeof types.DeleteConversationDocument,
    "\n  subscription NarrowStream($messageId: ID!) { messageStream(messageId: $messageId) { n: seq text: delta done } }\n": typeof types.NarrowStreamDocument,
    "\n  mutation CreateConversation($input: CreateConversationInput) {\n    createConversation(input: $input) { id title archived createdAt updatedAt messageCount }\n  }\n": typeof types.CreateConversationDocument,
    "\n  mutation UpdateConversation($input: UpdateConversationInput!) {\n    updateConversation(input: $input) { id title archived updatedAt }\n  }\n": typeof types.UpdateConversationDocument,
    "\n  mutation AddMessage($input: AddMessageInput!) {\n    addMessage(input: $input) {\n      id role content tokenCount metadata createdAt\n      conversation { id messageCount updatedAt }\n    }\n  }\n": typeof types.AddMessageDocument,
    "\n  mutation ClearMessages($conversationId: ID!) { clearMessages(conversationId: $conversationId) }\n": typeof types.ClearMessagesDocument,
    "\n  query GetConversation($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {\n    conversation(id: $id) {\n      id title archived messageCount createdAt updatedAt\n      messages(first: $first, after: $after, last: $last, before: $before) {\n        edges { cursor node { id role content conversation { id } } }\n        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }\n      }\n    }\n  }\n": typeof types.GetConversationDocument,
    "\n  query ListConversations($first: Int, $after: String, $archived: Boolean) {\n    conversations(first: $first, after: $after, archived: $archived) {\n      edges { cursor node { id title archived } }\n      pageInfo { hasNextPage hasPreviousPage endCursor }\n    }\n  }\n": typeof types.ListConversationsDocument,
    "\n  query ListConversationsBackwards($last: Int, $before: String) {\n    conversations(last: $last, before: $before) {\n      edges { node { id } }\n      pageInfo { hasNextPage hasPreviousPage startCursor }\n    }\n  }\n": typeof types.ListConversationsBackwardsDocument,
    "\n  query History($conversationId: ID!, $limit: Int) { history(conversationId: $conversationId, limit: $limit) { role content } }\n": typeof types.HistoryDocument,
    "\n  query ListWithRecentMessages($first: Int) {\n    conversations(first: $first) {\n      edges { node { id title messageCount messages(last: 5) { edges { node { id content conversation { id } } } } } }\n    }\n  }\n": typeof types.ListWithRecentMessagesDocument,
    "\n  query ListWithMessageFields($first: Int) {\n    conversations(first: $first) {\n      edges {\n        node {\n          id\n          messages(last: 3) {\n            edges {\n              node {\n                __typename\n                ... on Message { id role content tokenCount metadata createdAt status model finishReason promptTokens completionTokens error conversation { id } }\n              }\n            }\n          }\n        }\n      }\n    }\n  }\n": typeof types.ListWithMessageFieldsDocument,
    "\n  query ListWithContentOnly($first: Int) {\n    conversations(first: $first) { edges { node { id messages(last: 3) { edges { node { text: content } } } } } }\n  }\n": typeof types.ListWithContentOnlyDocument,
    "\n  mutation SetBaseUrl($input: UpdateUserConfigInput!) { updateUserConfig(input: $input) { baseUrl } }\n": typeof types.SetBaseUrlDocument,
    "\n  query CustomEndpointSetting { userConfig { baseUrl } }\n": typeof types.CustomEndpointSettingDocument,
    "\n  query ReplyError($id: ID!) { conversation(id: $id) { messages(last: 1) { edges { node { id role status content error } } } } }\n": typeof types.ReplyErrorDocument,
    "mutation CacheAdd($input: AddMessageInput!) { addMessage(input: $input) { id conversation { id } } }": typeof types.CacheAddDocument,
    "mutation CacheClear($id: ID!) { clearMessages(conversationId: $id) }": typeof types.CacheClearDocument,
    "mutation CacheRemove($id: ID!) { deleteConversation(id: $id) }": typeof types.CacheRemoveDocument,
    "query CacheHistory($id: ID!, $limit: Int) { history(conversationId: $id, limit: $limit) { role content } }": typeof types.CacheHistoryDocument,
    "\n  query CachePage($id: ID!, $last: Int) {\n    conversation(id: $id) {\n      messages(last: $last) {\n        edges { cursor node { id role content status tokenCount metadata createdAt model error } }\n        pageInfo { hasPreviousPage hasNextPage startCursor endCursor }\n      }\n    }\n  }\n": typeof types.CachePageDocument,
    "\n  query CacheList($last: Int) {\n    conversations(first: 50) { edges { node { id messageCount messages(last: $last) { edges { node { id content seq: content status } } pageInfo { hasPreviousPage } } } } }\n  }\n": typeof types.CacheListDocument,
    "mutation AdvSeed($input: AddMessageInput!) { addMessage(input: $input) { id conversation { id } } }": typeof types.AdvSeedDocument,
    "mutation AdvTitle($id: ID!, $title: String) { updateConversation(input: { id: $id, title: $title }) { id } }": typeof types.AdvTitleDocument,
    "mutation AdvConfigure($input: UpdateUserConfigInput!) { updateUserConfig(input: $input) { systemPrompt } }": typeof types.AdvConfigureDocument,
    "\n  query AdvOwnView($id: ID!) {\n    conversation(id: $id) {\n      id title archived messageCount\n      messages(first: 50) { edges { cursor node { id role content status } } }\n      newest: messages(last: 5) { edges { node { id content } } }\n    }\n    history(conversationId: $id, limit: 20) { role content }\n  }\n": typeof types.AdvOwnViewDocument,
    "query AdvMine { conversations(first: 100, archived: null) { edges { node { id } } } }": typeof types.AdvMineDocument,
    "query AdvConfig { userConfig { presetId model baseUrl hasApiKey maxTokens temperature systemPrompt contextTokens } }": typeof types.AdvConfigDocument,
    "\n  query AdvConversation($id: ID!) { conversation(id: $id) { id title messageCount messages(last: 5) { edges { cursor node { id content } } } } }\n": typeof types.AdvConversationDocument,
    "\n  query AdvPageAfter($id: ID!, $cursor: String) { conversation(id: $id) { messages(first: 2, after: $cursor) { edges { node { content } } pageInfo { hasNextPage } } } }\n": typeof types.AdvPageAfterDocument,
    "\n  query AdvPageBefore($id: ID!, $cursor: String) { conversation(id: $id) { messages(last: 2, before: $cursor) { edges { node { content } } pageInfo { hasPreviousPage } } } }\n": typeof types.AdvPageBeforeDocument,
    "query AdvHistory($id: ID!) { history(conversationId: $id, limit: 5) { role content } }": typeof types.AdvHistoryDocument,
    "mutation AdvAdd($id: ID!) { addMessage(input: { conversationId: $id, role: USER, content: \"injected\" }) { id content } }": typeof types.AdvAddDocument,
    "mutation AdvSend($id: ID!) { sendMessage(input: { conversationId: $id, content: \"injected\" }) { assistantMessage { id } } }": typeof types.AdvSendDocument,
    "mutation AdvUpdate($id: ID!) { updateConversation(input: { id: $id, title: \"pwned\", archived: true }) { id title } }": typeof types.AdvUpdateDocument,
    "mutation AdvClear($id: ID!) { clearMessages(conversationId: $id) }": typeof types.AdvClearDocument,
    "mutation AdvDelete($id: ID!) { deleteConversation(id: $id) }": typeof types.AdvDeleteDocument,
    "mutation AdvStop($id: ID!) { stopGeneration(messageId: $id) { id status content } }": typeof types.AdvStopDocument,
    "\n  subscription AdvStream($id: ID!, $afterSeq: Int) { messageStream(messageId: $id, afterSeq: $afterSeq) { seq delta done message { content } } }\n": typeof types.AdvStreamDocument,
    "\n  mutation Seed($input: AddMessageInput!) { addMessage(input: $input) { id conversation { id } } }\n": typeof types.SeedDocument,
    "\n  query Owned($id: ID!) {\n    conversation(id: $id) { id title archived messageCount messages(first: 100) { edges { cursor node { content } } } }\n  }\n": typeof types.OwnedDocument,
    "\n  query Mine { conversations(first: 100, archived: null) { edges { node { id title } } } }\n": typeof types.MineDocument,
    "query ProbeHistory($id: ID!) { history(conversationId: $id) { content } }": typeof types.ProbeHistoryDocument,
    "mutation ProbeUpdate($id: ID!) { updateConversation(input: { id: $id, title: \"pwned\", archived: true }) { id } }": typeof types.ProbeUpdateDocument,
    "mutation ProbeDelete($id: ID!) { deleteConversation(id: $id) }": typeof types.ProbeDeleteDocument,
    "mutation ProbeAdd($id: ID!) { addMessage(input: { conversationId: $id, role: USER, content: \"injected\" }) { id } }": typeof types.ProbeAddDocument,
    "mutation ProbeClear($id: ID!) { clearMessages(conversationId: $id) }": typeof types.ProbeClearDocument,
    "\n  query ProbeMessagesAfter($id: ID!, $after: String) { conversation(id: $id) { messages(first: 10, after: $after) { edges { node { content } } } } }\n": typeof types.ProbeMessagesAfterDocument,
    "query Whoami { conversations(first: 1) { edges { node { id } } } }": typeof types.WhoamiDocument,
    "\n  subscription MessageStream($messageId: ID!, $afterSeq: Int) {\n    messageStream(messageId: $messageId, afterSeq: $afterSeq) {\n      messageId seq delta done status error\n      message { id status content finishReason model promptTokens completionTokens error }\n    }\n  }\n": typeof types.MessageStreamDocument,
    "\n  mutation SendMessage($input: SendMessageInput!) {\n    sendMessage(input: $input) {\n      conversation { id title }\n      userMessage { id role content status }\n      assistantMessage { id role content status model }\n    }\n  }\n": typeof types.SendMessageDocument,
    "\n  mutation StopGeneration($messageId: ID!) { stopGeneration(messageId: $messageId) { id status content finishReason error } }\n": typeof types.StopGenerationDocument,
    "subscription Ticks($count: Int, $intervalMs: Int) { serverTime(count: $count, intervalMs: $intervalMs) }": typeof types.TicksDocument,
    "subscription BadInterval { serverTime(intervalMs: 1) }": typeof types.BadIntervalDocument,
};
const documents: Documents = {
    "\n  mutation UpdateUserConfig($input: UpdateUserConfigInput!) {\n    updateUserConfig(input: $input) { presetId model baseUrl hasApiKey maxTokens temperature systemPrompt contextTokens }\n  }\n": types.UpdateUserConfigDocument,
    "\n  query Settings { userConfig { presetId model baseUrl hasApiKey maxTokens temperature systemPrompt contextTokens } modelPresets { id name model baseUrl } }\n": types.SettingsDocument,
    "\n  query MessageDetails($id: ID!) {\n    conversation(id: $id) { title messages(last: 10) { edges { node { id role content status model finishReason promptTokens completionTokens error metadata } } } }\n  }\n": types.MessageDetailsDocument,
    "\n  mutation DeleteConversation($id: ID!) { deleteConversation(id: $id) }\n": types.DeleteConversationDocument,
    "\n  subscription NarrowStream($messageId: ID!) { messageStream(messageId: $messageId) { n: seq text: delta done } }\n": types.NarrowStreamDocument,
    "\n  mutation CreateConversation($input: CreateConversationInput) {\n    createConversation(input: $input) { id title archived createdAt updatedAt messageCount }\n  }\n": types.CreateConversationDocument,
    "\n  mutation UpdateConversation($input: UpdateConversationInput!) {\n    updateConversation(input: $input) { id title archived updatedAt }\n  }\n": types.UpdateConversationDocument,
    "\n  mutation AddMessage($input: AddMessageInput!) {\n    addMessage(input: $input) {\n      id role content tokenCount metadata createdAt\n      conversation { id messageCount updatedAt }\n    }\n  }\n": types.AddMessageDocument,
    "\n  mutation ClearMessages($conversationId: ID!) { clearMessages(conversationId: $conversationId) }\n": types.ClearMessagesDocument,
    "\n  query GetConversation($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {\n    conversation(id: $id) {\n      id title archived messageCount createdAt updatedAt\n      messages(first: $first, after: $after, last: $last, before: $before) {\n        edges { cursor node { id role content conversation { id } } }\n        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }\n      }\n    }\n  }\n": types.GetConversationDocument,
    "\n  query ListConversations($first: Int, $after: String, $archived: Boolean) {\n    conversations(first: $first, after: $after, archived: $archived) {\n      edges { cursor node { id title archived } }\n      pageInfo { hasNextPage hasPreviousPage endCursor }\n    }\n  }\n": types.ListConversationsDocument,
    "\n  query ListConversationsBackwards($last: Int, $before: String) {\n    conversations(last: $last, before: $before) {\n      edges { node { id } }\n      pageInfo { hasNextPage hasPreviousPage startCursor }\n    }\n  }\n": types.ListConversationsBackwardsDocument,
    "\n  query History($conversationId: ID!, $limit: Int) { history(conversationId: $conversationId, limit: $limit) { role content } }\n": types.HistoryDocument,
    "\n  query ListWithRecentMessages($first: Int) {\n    conversations(first: $first) {\n      edges { node { id title messageCount messages(last: 5) { edges { node { id content conversation { id } } } } } }\n    }\n  }\n": types.ListWithRecentMessagesDocument,
    "\n  query ListWithMessageFields($first: Int) {\n    conversations(first: $first) {\n      edges {\n        node {\n          id\n          messages(last: 3) {\n            edges {\n              node {\n                __typename\n                ... on Message { id role content tokenCount metadata createdAt status model finishReason promptTokens completionTokens error conversation { id } }\n              }\n            }\n          }\n        }\n      }\n    }\n  }\n": types.ListWithMessageFieldsDocument,
    "\n  query ListWithContentOnly($first: Int) {\n    conversations(first: $first) { edges { node { id messages(last: 3) { edges { node { text: content } } } } } }\n  }\n": types.ListWithContentOnlyDocument,
    "\n  mutation SetBaseUrl($input: UpdateUserConfigInput!) { updateUserConfig(input: $input) { baseUrl } }\n": types.SetBaseUrlDocument,
    "\n  query CustomEndpointSetting { userConfig { baseUrl } }\n": types.CustomEndpointSettingDocument,
    "\n  query ReplyError($id: ID!) { conversation(id: $id) { messages(last: 1) { edges { node { id role status content error } } } } }\n": types.ReplyErrorDocument,
    "mutation CacheAdd($input: AddMessageInput!) { addMessage(input: $input) { id conversation { id } } }": types.CacheAddDocument,
    "mutation CacheClear($id: ID!) { clearMessages(conversationId: $id) }": types.CacheClearDocument,
    "mutation CacheRemove($id: ID!) { deleteConversation(id: $id) }": types.CacheRemoveDocument,
    "query CacheHistory($id: ID!, $limit: Int) { history(conversationId: $id, limit: $limit) { role content } }": types.CacheHistoryDocument,
    "\n  query CachePage($id: ID!, $last: Int) {\n    conversation(id: $id) {\n      messages(last: $last) {\n        edges { cursor node { id role content status tokenCount metadata createdAt model error } }\n        pageInfo { hasPreviousPage hasNextPage startCursor endCursor }\n      }\n    }\n  }\n": types.CachePageDocument,
    "\n  query CacheList($last: Int) {\n    conversations(first: 50) { edges { node { id messageCount messages(last: $last) { edges { node { id content seq: content status } } pageInfo { hasPreviousPage } } } } }\n  }\n": types.CacheListDocument,
    "mutation AdvSeed($input: AddMessageInput!) { addMessage(input: $input) { id conversation { id } } }": types.AdvSeedDocument,
    "mutation AdvTitle($id: ID!, $title: String) { updateConversation(input: { id: $id, title: $title }) { id } }": types.AdvTitleDocument,
    "mutation AdvConfigure($input: UpdateUserConfigInput!) { updateUserConfig(input: $input) { systemPrompt } }": types.AdvConfigureDocument,
    "\n  query AdvOwnView($id: ID!) {\n    conversation(id: $id) {\n      id title archived messageCount\n      messages(first: 50) { edges { cursor node { id role content status } } }\n      newest: messages(last: 5) { edges { node { id content } } }\n    }\n    history(conversationId: $id, limit: 20) { role content }\n  }\n": types.AdvOwnViewDocument,
    "query AdvMine { conversations(first: 100, archived: null) { edges { node { id } } } }": types.AdvMineDocument,
    "query AdvConfig { userConfig { presetId model baseUrl hasApiKey maxTokens temperature systemPrompt contextTokens } }": types.AdvConfigDocument,
    "\n  query AdvConversation($id: ID!) { conversation(id: $id) { id title messageCount messages(last: 5) { edges { cursor node { id content } } } } }\n": types.AdvConversationDocument,
    "\n  query AdvPageAfter($id: ID!, $cursor: String) { conversation(id: $id) { messages(first: 2, after: $cursor) { edges { node { content } } pageInfo { hasNextPage } } } }\n": types.AdvPageAfterDocument,
    "\n  query AdvPageBefore($id: ID!, $cursor: String) { conversation(id: $id) { messages(last: 2, before: $cursor) { edges { node { content } } pageInfo { hasPreviousPage } } } }\n": types.AdvPageBeforeDocument,
    "query AdvHistory($id: ID!) { history(conversationId: $id, limit: 5) { role content } }": types.AdvHistoryDocument,
    "mutation AdvAdd($id: ID!) { addMessage(input: { conversationId: $id, role: USER, content: \"injected\" }) { id content } }": types.AdvAddDocument,
    "mutation AdvSend($id: ID!) { sendMessage(input: { conversationId: $id, content: \"injected\" }) { assistantMessage { id } } }": types.AdvSendDocument,
    "mutation AdvUpdate($id: ID!) { updateConversation(input: { id: $id, title: \"pwned\", archived: true }) { id title } }": types.AdvUpdateDocument,
    "mutation AdvClear($id: ID!) { clearMessages(conversationId: $id) }": types.AdvClearDocument,
    "mutation AdvDelete($id: ID!) { deleteConversation(id: $id) }": types.AdvDeleteDocument,
    "mutation AdvStop($id: ID!) { stopGeneration(messageId: $id) { id status content } }": types.AdvStopDocument,
    "\n  subscription AdvStream($id: ID!, $afterSeq: Int) { messageStream(messageId: $id, afterSeq: $afterSeq) { seq delta done message { content } } }\n": types.AdvStreamDocument,
    "\n  mutation Seed($input: AddMessageInput!) { addMessage(input: $input) { id conversation { id } } }\n": types.SeedDocument,
    "\n  query Owned($id: ID!) {\n    conversation(id: $id) { id title archived messageCount messages(first: 100) { edges { cursor node { content } } } }\n  }\n": types.OwnedDocument,
    "\n  query Mine { conversations(first: 100, archived: null) { edges { node { id title } } } }\n": types.MineDocument,
    "query ProbeHistory($id: ID!) { history(conversationId: $id) { content } }": types.ProbeHistoryDocument,
    "mutation ProbeUpdate($id: ID!) { updateConversation(input: { id: $id, title: \"pwned\", archived: true }) { id } }": types.ProbeUpdateDocument,
    "mutation ProbeDelete($id: ID!) { deleteConversation(id: $id) }": types.ProbeDeleteDocument,
    "mutation ProbeAdd($id: ID!) { addMessage(input: { conversationId: $id, role: USER, content: \"injected\" }) { id } }": types.ProbeAddDocument,
    "mutation ProbeClear($id: ID!) { clearMessages(conversationId: $id) }": types.ProbeClearDocument,
    "\n  query ProbeMessagesAfter($id: ID!, $after: String) { conversation(id: $id) { messages(first: 10, after: $after) { edges { node { content } } } } }\n": types.ProbeMessagesAfterDocument,
    "query Whoami { conversations(first: 1) { edges { node { id } } } }": types.WhoamiDocument,
    "\n  subscription MessageStream($messageId: ID!, $afterSeq: Int) {\n    messageStream(messageId: $messageId, afterSeq: $afterSeq) {\n      messageId seq delta done status error\n      message { id status content finishReason model promptTokens completionTokens error }\n    }\n  }\n": types.MessageStreamDocument,
    "\n  mutation SendMessage($input: SendMessageInput!) {\n    sendMessage(input: $input) {\n      conversation { id title }\n      userMessage { id role content status }\n      assistantMessage { id role content status model }\n    }\n  }\n": types.SendMessageDocument,
    "\n  mutation StopGeneration($messageId: ID!) { stopGeneration(messageId: $messageId) { id status content finishReason error } }\n": types.StopGenerationDocument,
    "subscription Ticks($count: Int, $intervalMs: Int) { serverTime(count: $count, intervalMs: $intervalMs) }": types.TicksDocument,
    "subscription BadInterval { serverTime(intervalMs: 1) }": types.BadIntervalDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation UpdateUserConfig($input: UpdateUserConfigInput!) {\n    updateUserConfig(input: $input) { presetId model baseUrl hasApiKey maxTokens temperature systemPrompt contextTokens }\n  }\n"): (typeof documents)["\n  mutation UpdateUserConfig($input: UpdateUserConfigInput!) {\n    updateUserConfig(input: $input) { presetId model baseUrl hasApiKey maxTokens temperature systemPrompt contextTokens }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Settings { userConfig { presetId model baseUrl hasApiKey maxTokens temperature systemPrompt contextTokens } modelPresets { id name model baseUrl } }\n"): (typeof documents)["\n  query Settings { userConfig { presetId model baseUrl hasApiKey maxTokens temperature systemPrompt contextTokens } modelPresets { id name model baseUrl } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query MessageDetails($id: ID!) {\n    conversation(id: $id) { title messages(last: 10) { edges { node { id role content status model finishReason promptTokens completionTokens error metadata } } } }\n  }\n"): (typeof documents)["\n  query MessageDetails($id: ID!) {\n    conversation(id: $id) { title messages(last: 10) { edges { node { id role content status model finishReason promptTokens completionTokens error metadata } } } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation DeleteConversation($id: ID!) { deleteConversation(id: $id) }\n"): (typeof documents)["\n  mutation DeleteConversation($id: ID!) { deleteConversation(id: $id) }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription NarrowStream($messageId: ID!) { messageStream(messageId: $messageId) { n: seq text: delta done } }\n"): (typeof documents)["\n  subscription NarrowStream($messageId: ID!) { messageStream(messageId: $messageId) { n: seq text: delta done } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateConversation($input: CreateConversationInput) {\n    createConversation(input: $input) { id title archived createdAt updatedAt messageCount }\n  }\n"): (typeof documents)["\n  mutation CreateConversation($input: CreateConversationInput) {\n    createConversation(input: $input) { id title archived createdAt updatedAt messageCount }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation UpdateConversation($input: UpdateConversationInput!) {\n    updateConversation(input: $input) { id title archived updatedAt }\n  }\n"): (typeof documents)["\n  mutation UpdateConversation($input: UpdateConversationInput!) {\n    updateConversation(input: $input) { id title archived updatedAt }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation AddMessage($input: AddMessageInput!) {\n    addMessage(input: $input) {\n      id role content tokenCount metadata createdAt\n      conversation { id messageCount updatedAt }\n    }\n  }\n"): (typeof documents)["\n  mutation AddMessage($input: AddMessageInput!) {\n    addMessage(input: $input) {\n      id role content tokenCount metadata createdAt\n      conversation { id messageCount updatedAt }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ClearMessages($conversationId: ID!) { clearMessages(conversationId: $conversationId) }\n"): (typeof documents)["\n  mutation ClearMessages($conversationId: ID!) { clearMessages(conversationId: $conversationId) }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query GetConversation($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {\n    conversation(id: $id) {\n      id title archived messageCount createdAt updatedAt\n      messages(first: $first, after: $after, last: $last, before: $before) {\n        edges { cursor node { id role content conversation { id } } }\n        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }\n      }\n    }\n  }\n"): (typeof documents)["\n  query GetConversation($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {\n    conversation(id: $id) {\n      id title archived messageCount createdAt updatedAt\n      messages(first: $first, after: $after, last: $last, before: $before) {\n        edges { cursor node { id role content conversation { id } } }\n        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query ListConversations($first: Int, $after: String, $archived: Boolean) {\n    conversations(first: $first, after: $after, archived: $archived) {\n      edges { cursor node { id title archived } }\n      pageInfo { hasNextPage hasPreviousPage endCursor }\n    }\n  }\n"): (typeof documents)["\n  query ListConversations($first: Int, $after: String, $archived: Boolean) {\n    conversations(first: $first, after: $after, archived: $archived) {\n      edges { cursor node { id title archived } }\n      pageInfo { hasNextPage hasPreviousPage endCursor }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query ListConversationsBackwards($last: Int, $before: String) {\n    conversations(last: $last, before: $before) {\n      edges { node { id } }\n      pageInfo { hasNextPage hasPreviousPage startCursor }\n    }\n  }\n"): (typeof documents)["\n  query ListConversationsBackwards($last: Int, $before: String) {\n    conversations(last: $last, before: $before) {\n      edges { node { id } }\n      pageInfo { hasNextPage hasPreviousPage startCursor }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query History($conversationId: ID!, $limit: Int) { history(conversationId: $conversationId, limit: $limit) { role content } }\n"): (typeof documents)["\n  query History($conversationId: ID!, $limit: Int) { history(conversationId: $conversationId, limit: $limit) { role content } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query ListWithRecentMessages($first: Int) {\n    conversations(first: $first) {\n      edges { node { id title messageCount messages(last: 5) { edges { node { id content conversation { id } } } } } }\n    }\n  }\n"): (typeof documents)["\n  query ListWithRecentMessages($first: Int) {\n    conversations(first: $first) {\n      edges { node { id title messageCount messages(last: 5) { edges { node { id content conversation { id } } } } } }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query ListWithMessageFields($first: Int) {\n    conversations(first: $first) {\n      edges {\n        node {\n          id\n          messages(last: 3) {\n            edges {\n              node {\n                __typename\n                ... on Message { id role content tokenCount metadata createdAt status model finishReason promptTokens completionTokens error conversation { id } }\n              }\n            }\n          }\n        }\n      }\n    }\n  }\n"): (typeof documents)["\n  query ListWithMessageFields($first: Int) {\n    conversations(first: $first) {\n      edges {\n        node {\n          id\n          messages(last: 3) {\n            edges {\n              node {\n                __typename\n                ... on Message { id role content tokenCount metadata createdAt status model finishReason promptTokens completionTokens error conversation { id } }\n              }\n            }\n          }\n        }\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query ListWithContentOnly($first: Int) {\n    conversations(first: $first) { edges { node { id messages(last: 3) { edges { node { text: content } } } } } }\n  }\n"): (typeof documents)["\n  query ListWithContentOnly($first: Int) {\n    conversations(first: $first) { edges { node { id messages(last: 3) { edges { node { text: content } } } } } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SetBaseUrl($input: UpdateUserConfigInput!) { updateUserConfig(input: $input) { baseUrl } }\n"): (typeof documents)["\n  mutation SetBaseUrl($input: UpdateUserConfigInput!) { updateUserConfig(input: $input) { baseUrl } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query CustomEndpointSetting { userConfig { baseUrl } }\n"): (typeof documents)["\n  query CustomEndpointSetting { userConfig { baseUrl } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query ReplyError($id: ID!) { conversation(id: $id) { messages(last: 1) { edges { node { id role status content error } } } } }\n"): (typeof documents)["\n  query ReplyError($id: ID!) { conversation(id: $id) { messages(last: 1) { edges { node { id role status content error } } } } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation CacheAdd($input: AddMessageInput!) { addMessage(input: $input) { id conversation { id } } }"): (typeof documents)["mutation CacheAdd($input: AddMessageInput!) { addMessage(input: $input) { id conversation { id } } }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation CacheClear($id: ID!) { clearMessages(conversationId: $id) }"): (typeof documents)["mutation CacheClear($id: ID!) { clearMessages(conversationId: $id) }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation CacheRemove($id: ID!) { deleteConversation(id: $id) }"): (typeof documents)["mutation CacheRemove($id: ID!) { deleteConversation(id: $id) }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "query CacheHistory($id: ID!, $limit: Int) { history(conversationId: $id, limit: $limit) { role content } }"): (typeof documents)["query CacheHistory($id: ID!, $limit: Int) { history(conversationId: $id, limit: $limit) { role content } }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query CachePage($id: ID!, $last: Int) {\n    conversation(id: $id) {\n      messages(last: $last) {\n        edges { cursor node { id role content status tokenCount metadata createdAt model error } }\n        pageInfo { hasPreviousPage hasNextPage startCursor endCursor }\n      }\n    }\n  }\n"): (typeof documents)["\n  query CachePage($id: ID!, $last: Int) {\n    conversation(id: $id) {\n      messages(last: $last) {\n        edges { cursor node { id role content status tokenCount metadata createdAt model error } }\n        pageInfo { hasPreviousPage hasNextPage startCursor endCursor }\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query CacheList($last: Int) {\n    conversations(first: 50) { edges { node { id messageCount messages(last: $last) { edges { node { id content seq: content status } } pageInfo { hasPreviousPage } } } } }\n  }\n"): (typeof documents)["\n  query CacheList($last: Int) {\n    conversations(first: 50) { edges { node { id messageCount messages(last: $last) { edges { node { id content seq: content status } } pageInfo { hasPreviousPage } } } } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation AdvSeed($input: AddMessageInput!) { addMessage(input: $input) { id conversation { id } } }"): (typeof documents)["mutation AdvSeed($input: AddMessageInput!) { addMessage(input: $input) { id conversation { id } } }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation AdvTitle($id: ID!, $title: String) { updateConversation(input: { id: $id, title: $title }) { id } }"): (typeof documents)["mutation AdvTitle($id: ID!, $title: String) { updateConversation(input: { id: $id, title: $title }) { id } }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation AdvConfigure($input: UpdateUserConfigInput!) { updateUserConfig(input: $input) { systemPrompt } }"): (typeof documents)["mutation AdvConfigure($input: UpdateUserConfigInput!) { updateUserConfig(input: $input) { systemPrompt } }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query AdvOwnView($id: ID!) {\n    conversation(id: $id) {\n      id title archived messageCount\n      messages(first: 50) { edges { cursor node { id role content status } } }\n      newest: messages(last: 5) { edges { node { id content } } }\n    }\n    history(conversationId: $id, limit: 20) { role content }\n  }\n"): (typeof documents)["\n  query AdvOwnView($id: ID!) {\n    conversation(id: $id) {\n      id title archived messageCount\n      messages(first: 50) { edges { cursor node { id role content status } } }\n      newest: messages(last: 5) { edges { node { id content } } }\n    }\n    history(conversationId: $id, limit: 20) { role content }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "query AdvMine { conversations(first: 100, archived: null) { edges { node { id } } } }"): (typeof documents)["query AdvMine { conversations(first: 100, archived: null) { edges { node { id } } } }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "query AdvConfig { userConfig { presetId model baseUrl hasApiKey maxTokens temperature systemPrompt contextTokens } }"): (typeof documents)["query AdvConfig { userConfig { presetId model baseUrl hasApiKey maxTokens temperature systemPrompt contextTokens } }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query AdvConversation($id: ID!) { conversation(id: $id) { id title messageCount messages(last: 5) { edges { cursor node { id content } } } } }\n"): (typeof documents)["\n  query AdvConversation($id: ID!) { conversation(id: $id) { id title messageCount messages(last: 5) { edges { cursor node { id content } } } } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query AdvPageAfter($id: ID!, $cursor: String) { conversation(id: $id) { messages(first: 2, after: $cursor) { edges { node { content } } pageInfo { hasNextPage } } } }\n"): (typeof documents)["\n  query AdvPageAfter($id: ID!, $cursor: String) { conversation(id: $id) { messages(first: 2, after: $cursor) { edges { node { content } } pageInfo { hasNextPage } } } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query AdvPageBefore($id: ID!, $cursor: String) { conversation(id: $id) { messages(last: 2, before: $cursor) { edges { node { content } } pageInfo { hasPreviousPage } } } }\n"): (typeof documents)["\n  query AdvPageBefore($id: ID!, $cursor: String) { conversation(id: $id) { messages(last: 2, before: $cursor) { edges { node { content } } pageInfo { hasPreviousPage } } } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "query AdvHistory($id: ID!) { history(conversationId: $id, limit: 5) { role content } }"): (typeof documents)["query AdvHistory($id: ID!) { history(conversationId: $id, limit: 5) { role content } }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation AdvAdd($id: ID!) { addMessage(input: { conversationId: $id, role: USER, content: \"injected\" }) { id content } }"): (typeof documents)["mutation AdvAdd($id: ID!) { addMessage(input: { conversationId: $id, role: USER, content: \"injected\" }) { id content } }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation AdvSend($id: ID!) { sendMessage(input: { conversationId: $id, content: \"injected\" }) { assistantMessage { id } } }"): (typeof documents)["mutation AdvSend($id: ID!) { sendMessage(input: { conversationId: $id, content: \"injected\" }) { assistantMessage { id } } }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation AdvUpdate($id: ID!) { updateConversation(input: { id: $id, title: \"pwned\", archived: true }) { id title } }"): (typeof documents)["mutation AdvUpdate($id: ID!) { updateConversation(input: { id: $id, title: \"pwned\", archived: true }) { id title } }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation AdvClear($id: ID!) { clearMessages(conversationId: $id) }"): (typeof documents)["mutation AdvClear($id: ID!) { clearMessages(conversationId: $id) }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation AdvDelete($id: ID!) { deleteConversation(id: $id) }"): (typeof documents)["mutation AdvDelete($id: ID!) { deleteConversation(id: $id) }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation AdvStop($id: ID!) { stopGeneration(messageId: $id) { id status content } }"): (typeof documents)["mutation AdvStop($id: ID!) { stopGeneration(messageId: $id) { id status content } }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription AdvStream($id: ID!, $afterSeq: Int) { messageStream(messageId: $id, afterSeq: $afterSeq) { seq delta done message { content } } }\n"): (typeof documents)["\n  subscription AdvStream($id: ID!, $afterSeq: Int) { messageStream(messageId: $id, afterSeq: $afterSeq) { seq delta done message { content } } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Seed($input: AddMessageInput!) { addMessage(input: $input) { id conversation { id } } }\n"): (typeof documents)["\n  mutation Seed($input: AddMessageInput!) { addMessage(input: $input) { id conversation { id } } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Owned($id: ID!) {\n    conversation(id: $id) { id title archived messageCount messages(first: 100) { edges { cursor node { content } } } }\n  }\n"): (typeof documents)["\n  query Owned($id: ID!) {\n    conversation(id: $id) { id title archived messageCount messages(first: 100) { edges { cursor node { content } } } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Mine { conversations(first: 100, archived: null) { edges { node { id title } } } }\n"): (typeof documents)["\n  query Mine { conversations(first: 100, archived: null) { edges { node { id title } } } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "query ProbeHistory($id: ID!) { history(conversationId: $id) { content } }"): (typeof documents)["query ProbeHistory($id: ID!) { history(conversationId: $id) { content } }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation ProbeUpdate($id: ID!) { updateConversation(input: { id: $id, title: \"pwned\", archived: true }) { id } }"): (typeof documents)["mutation ProbeUpdate($id: ID!) { updateConversation(input: { id: $id, title: \"pwned\", archived: true }) { id } }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation ProbeDelete($id: ID!) { deleteConversation(id: $id) }"): (typeof documents)["mutation ProbeDelete($id: ID!) { deleteConversation(id: $id) }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation ProbeAdd($id: ID!) { addMessage(input: { conversationId: $id, role: USER, content: \"injected\" }) { id } }"): (typeof documents)["mutation ProbeAdd($id: ID!) { addMessage(input: { conversationId: $id, role: USER, content: \"injected\" }) { id } }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "mutation ProbeClear($id: ID!) { clearMessages(conversationId: $id) }"): (typeof documents)["mutation ProbeClear($id: ID!) { clearMessages(conversationId: $id) }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query ProbeMessagesAfter($id: ID!, $after: String) { conversation(id: $id) { messages(first: 10, after: $after) { edges { node { content } } } } }\n"): (typeof documents)["\n  query ProbeMessagesAfter($id: ID!, $after: String) { conversation(id: $id) { messages(first: 10, after: $after) { edges { node { content } } } } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "query Whoami { conversations(first: 1) { edges { node { id } } } }"): (typeof documents)["query Whoami { conversations(first: 1) { edges { node { id } } } }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription MessageStream($messageId: ID!, $afterSeq: Int) {\n    messageStream(messageId: $messageId, afterSeq: $afterSeq) {\n      messageId seq delta done status error\n      message { id status content finishReason model promptTokens completionTokens error }\n    }\n  }\n"): (typeof documents)["\n  subscription MessageStream($messageId: ID!, $afterSeq: Int) {\n    messageStream(messageId: $messageId, afterSeq: $afterSeq) {\n      messageId seq delta done status error\n      message { id status content finishReason model promptTokens completionTokens error }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SendMessage($input: SendMessageInput!) {\n    sendMessage(input: $input) {\n      conversation { id title }\n      userMessage { id role content status }\n      assistantMessage { id role content status model }\n    }\n  }\n"): (typeof documents)["\n  mutation SendMessage($input: SendMessageInput!) {\n    sendMessage(input: $input) {\n      conversation { id title }\n      userMessage { id role content status }\n      assistantMessage { id role content status model }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation StopGeneration($messageId: ID!) { stopGeneration(messageId: $messageId) { id status content finishReason error } }\n"): (typeof documents)["\n  mutation StopGeneration($messageId: ID!) { stopGeneration(messageId: $messageId) { id status content finishReason error } }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "subscription Ticks($count: Int, $intervalMs: Int) { serverTime(count: $count, intervalMs: $intervalMs) }"): (typeof documents)["subscription Ticks($count: Int, $intervalMs: Int) { serverTime(count: $count, intervalMs: $intervalMs) }"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "subscription BadInterval { serverTime(intervalMs: 1) }"): (typeof documents)["subscription BadInterval { serverTime(intervalMs: 1) }"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;