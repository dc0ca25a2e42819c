-- Messages form a tree: each has a parent, and a conversation has one active path, root to
-- currentMessageId. The two new id columns compare exactly, like every id column since
-- 20261206000000_exact_ids.
SET @id_collation = COALESCE(
  (SELECT COLLATION_NAME FROM information_schema.COLLATIONS
    WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')
    ORDER BY COLLATION_NAME = 'utf8mb4_nopad_bin' DESC LIMIT 1),
  'utf8mb4_bin');
SET @ddl = CONCAT('ALTER TABLE `Conversation`',
  ' ADD COLUMN `currentMessageId` VARCHAR(191) CHARACTER SET utf8mb4 COLLATE ', @id_collation, ' NULL,',
  ' ADD COLUMN `pathLength` INTEGER NOT NULL DEFAULT 0');
PREPARE statement FROM @ddl;
EXECUTE statement;
DEALLOCATE PREPARE statement;
SET @ddl = CONCAT('ALTER TABLE `Message`',
  ' ADD COLUMN `parentId` VARCHAR(191) CHARACTER SET utf8mb4 COLLATE ', @id_collation, ' NULL,',
  ' ADD COLUMN `depth` INTEGER NOT NULL DEFAULT 0,',
  ' ADD COLUMN `onPath` BOOLEAN NOT NULL DEFAULT true');
PREPARE statement FROM @ddl;
EXECUTE statement;
DEALLOCATE PREPARE statement;

-- Existing conversations become one path: each message answers the one before it in seq order,
-- and the newest is the tip.
UPDATE `Message` m JOIN (
  SELECT `id`,
         LAG(`id`) OVER (PARTITION BY `conversationId` ORDER BY `seq`) AS previousId,
         ROW_NUMBER() OVER (PARTITION BY `conversationId` ORDER BY `seq`) - 1 AS position
  FROM `Message`
) ranked ON ranked.`id` = m.`id`
SET m.`parentId` = ranked.previousId, m.`depth` = ranked.position;

UPDATE `Conversation` c JOIN (
  SELECT `conversationId`, `id`, total FROM (
    SELECT `conversationId`, `id`,
           ROW_NUMBER() OVER (PARTITION BY `conversationId` ORDER BY `seq` DESC) AS newest,
           COUNT(*) OVER (PARTITION BY `conversationId`) AS total
    FROM `Message`
  ) ranked WHERE newest = 1
) tip ON tip.`conversationId` = c.`id`
SET c.`currentMessageId` = tip.`id`, c.`pathLength` = tip.total;

-- CreateIndex
CREATE INDEX `Message_conversationId_onPath_seq_idx` ON `Message`(`conversationId`, `onPath`, `seq`);

-- CreateIndex
CREATE INDEX `Message_conversationId_parentId_seq_idx` ON `Message`(`conversationId`, `parentId`, `seq`);
