-- Ids compare exactly, as on PostgreSQL and SQLite, so that the database and the history cache's
-- keys agree on identity: `abc`, `ABC` and `abc ` are three ids. Every id and user id column gets
-- a binary collation without trailing-space padding (utf8mb4_bin pads: it finds `abc` for `abc `):
-- utf8mb4_nopad_bin on MariaDB, utf8mb4_0900_bin on MySQL 8, utf8mb4_bin where neither exists.
-- UserConfig.systemPrompt becomes MEDIUMTEXT: TEXT holds 65,535 bytes, fewer than the 100,000
-- characters a system prompt may have.
SET @id_collation = COALESCE(
  (SELECT COLLATION_NAME FROM information_schema.COLLATIONS
    WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')
    ORDER BY COLLATION_NAME = 'utf8mb4_nopad_bin' DESC LIMIT 1),
  'utf8mb4_bin');
SET @id_type = CONCAT('VARCHAR(191) CHARACTER SET utf8mb4 COLLATE ', @id_collation);

-- A message must name its conversation's id byte for byte, or the foreign key cannot come back.
UPDATE `Message` m JOIN `Conversation` c ON c.`id` = m.`conversationId`
   SET m.`conversationId` = c.`id`
 WHERE BINARY m.`conversationId` <> BINARY c.`id`;

-- The foreign key's two columns change collation together, while it is away.
ALTER TABLE `Message` DROP FOREIGN KEY `Message_conversationId_fkey`;

SET @ddl = CONCAT('ALTER TABLE `Conversation`',
  ' MODIFY `id` ', @id_type, ' NOT NULL,',
  ' MODIFY `userId` ', @id_type, ' NOT NULL');
PREPARE statement FROM @ddl;
EXECUTE statement;
DEALLOCATE PREPARE statement;

SET @ddl = CONCAT('ALTER TABLE `Message`',
  ' MODIFY `id` ', @id_type, ' NOT NULL,',
  ' MODIFY `conversationId` ', @id_type, ' NOT NULL,',
  ' MODIFY `userId` ', @id_type, ' NOT NULL,',
  ' MODIFY `clientMessageId` ', @id_type, ' NULL');
PREPARE statement FROM @ddl;
EXECUTE statement;
DEALLOCATE PREPARE statement;

SET @ddl = CONCAT('ALTER TABLE `UserConfig`',
  ' MODIFY `userId` ', @id_type, ' NOT NULL,',
  ' MODIFY `presetId` ', @id_type, ' NULL,',
  ' MODIFY `systemPrompt` MEDIUMTEXT NULL');
PREPARE statement FROM @ddl;
EXECUTE statement;
DEALLOCATE PREPARE statement;

ALTER TABLE `Message` ADD CONSTRAINT `Message_conversationId_fkey` FOREIGN KEY (`conversationId`) REFERENCES `Conversation`(`id`) ON DELETE CASCADE ON UPDATE CASCADE;
