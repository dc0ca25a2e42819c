-- Messages form a tree: each has a parent, and a conversation has one active path, root to
-- currentMessageId.
-- AlterTable
ALTER TABLE "Conversation" ADD COLUMN     "currentMessageId" TEXT,
ADD COLUMN     "pathLength" INTEGER NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "Message" ADD COLUMN     "depth" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "onPath" BOOLEAN NOT NULL DEFAULT true,
ADD COLUMN     "parentId" TEXT;

-- Existing conversations become one path: each message answers the one before it in seq order,
-- and the newest is the tip.
UPDATE "Message" AS m SET "parentId" = ranked."previousId", "depth" = ranked."position"
FROM (
  SELECT "id",
         LAG("id") OVER (PARTITION BY "conversationId" ORDER BY "seq") AS "previousId",
         (ROW_NUMBER() OVER (PARTITION BY "conversationId" ORDER BY "seq") - 1)::int AS "position"
  FROM "Message"
) AS ranked
WHERE m."id" = ranked."id";

UPDATE "Conversation" AS c SET "currentMessageId" = newest."id", "pathLength" = newest."count"
FROM (
  SELECT DISTINCT ON ("conversationId") "conversationId", "id", (COUNT(*) OVER (PARTITION BY "conversationId"))::int AS "count"
  FROM "Message"
  ORDER BY "conversationId", "seq" DESC
) AS newest
WHERE c."id" = newest."conversationId";

-- CreateIndex
CREATE INDEX "Message_conversationId_onPath_seq_idx" ON "Message"("conversationId", "onPath", "seq");

-- CreateIndex
CREATE INDEX "Message_conversationId_parentId_seq_idx" ON "Message"("conversationId", "parentId", "seq");
