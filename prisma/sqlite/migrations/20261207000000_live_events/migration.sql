-- Conversation and viewer events: per-conversation and per-user counters, bumped in the statement
-- that makes each change visible. A plain ADD COLUMN: a table redefinition would drop and refill
-- Conversation, and with foreign keys on, dropping it cascades to every message.
ALTER TABLE "Conversation" ADD COLUMN "lastEventSeq" INTEGER NOT NULL DEFAULT -1;

-- CreateTable
CREATE TABLE "ViewerState" (
    "userId" TEXT NOT NULL PRIMARY KEY,
    "lastEventSeq" INTEGER NOT NULL DEFAULT -1
);
