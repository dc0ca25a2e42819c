-- DropIndex
DROP INDEX `Message_status_updatedAt_idx` ON `Message`;

-- AlterTable
ALTER TABLE `Message` ADD COLUMN `leaseExpiresAt` DATETIME(3) NULL;

-- CreateIndex
CREATE INDEX `Message_status_leaseExpiresAt_idx` ON `Message`(`status`, `leaseExpiresAt`);
