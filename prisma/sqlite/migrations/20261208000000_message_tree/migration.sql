-- Messages form a tree: each has a parent, and a conversation has one active path, root to
-- currentMessageId. Plain ADD COLUMNs: a table redefinition would drop and refill Conversation,
-- and with foreign keys on, dropping it cascades to every message.
ALTER TABLE "Conversation" ADD COLUMN "currentMessageId" TEXT;
ALTER TABLE "Conversation" ADD COLUMN "pathLength" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "Message" ADD COLUMN "parentId" TEXT;
ALTER TABLE "Message" ADD COLUMN "depth" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "Message" ADD COLUMN "onPath" BOOLEAN NOT NULL DEFAULT true;

-- Existing conversations become one path: each message answers the one before it in seq order,
-- and the newest is the tip.
UPDATE "Message" SET "parentId" = "ranked"."previousId", "depth" = "ranked"."position"
FROM (
  SELECT "id",
         LAG("id") OVER (PARTITION BY "conversationId" ORDER BY "seq") AS "previousId",
         ROW_NUMBER() OVER (PARTITION BY "conversationId" ORDER BY "seq") - 1 AS "position"
  FROM "Message"
) AS "ranked"
WHERE "Message"."id" = "ranked"."id";

UPDATE "Conversation" SET
  "currentMessageId" = (SELECT "m"."id" FROM "Message" AS "m" WHERE "m"."conversationId" = "Conversation"."id" ORDER BY "m"."seq" DESC LIMIT 1),
  "pathLength" = (SELECT COUNT(*) FROM "Message" AS "m" WHERE "m"."conversationId" = "Conversation"."id");

-- CreateIndex
CREATE INDEX "Message_conversationId_onPath_seq_idx" ON "Message"("conversationId", "onPath", "seq");

-- CreateIndex
CREATE INDEX "Message_conversationId_parentId_seq_idx" ON "Message"("conversationId", "parentId", "seq");
