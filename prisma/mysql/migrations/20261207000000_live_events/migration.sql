-- Conversation and viewer events: per-conversation and per-user counters, bumped in the statement
-- that makes each change visible. ViewerState.userId compares exactly, like every id column
-- since 20261206000000_exact_ids.
ALTER TABLE `Conversation` ADD COLUMN `lastEventSeq` INTEGER NOT NULL DEFAULT -1;

SET @id_collation = COALESCE(
  (SELECT COLLATION_NAME FROM information_schema.COLLATIONS
    WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')
    ORDER BY COLLATION_NAME = 'utf8mb4_nopad_bin' DESC LIMIT 1),
  'utf8mb4_bin');
SET @ddl = CONCAT('CREATE TABLE `ViewerState` (',
  ' `userId` VARCHAR(191) CHARACTER SET utf8mb4 COLLATE ', @id_collation, ' NOT NULL,',
  ' `lastEventSeq` INTEGER NOT NULL DEFAULT -1,',
  ' PRIMARY KEY (`userId`)',
  ') DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci');
PREPARE statement FROM @ddl;
EXECUTE statement;
DEALLOCATE PREPARE statement;
