-- Written to match what Prisma generates for prisma/mysql/schema.prisma (no Wasm schema engine for
-- MySQL). One deliberate difference: user ids and idempotency keys compare case-sensitively
-- (utf8mb4_bin), so that users `Ann` and `ann` never share rows.
-- CreateTable
CREATE TABLE `Conversation` (
    `id` VARCHAR(191) NOT NULL,
    `userId` VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    `title` VARCHAR(255) NULL,
    `archived` BOOLEAN NOT NULL DEFAULT false,
    `lastSeq` INTEGER NOT NULL DEFAULT 0,
    `createdAt` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updatedAt` DATETIME(3) NOT NULL,

    INDEX `Conversation_userId_archived_updatedAt_id_idx`(`userId`, `archived`, `updatedAt` DESC, `id` DESC),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `Message` (
    `id` VARCHAR(191) NOT NULL,
    `conversationId` VARCHAR(191) NOT NULL,
    `userId` VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    `seq` INTEGER NOT NULL,
    `role` ENUM('SYSTEM', 'USER', 'ASSISTANT') NOT NULL,
    `content` MEDIUMTEXT NOT NULL,
    `tokenCount` INTEGER NULL,
    `metadata` JSON NULL,
    `status` ENUM('STREAMING', 'COMPLETE', 'STOPPED', 'FAILED', 'INTERRUPTED') NOT NULL DEFAULT 'COMPLETE',
    `model` VARCHAR(255) NULL,
    `finishReason` VARCHAR(64) NULL,
    `promptTokens` INTEGER NULL,
    `completionTokens` INTEGER NULL,
    `error` TEXT NULL,
    `clientMessageId` VARCHAR(191) COLLATE utf8mb4_bin NULL,
    `createdAt` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updatedAt` DATETIME(3) NOT NULL,

    INDEX `Message_status_updatedAt_idx`(`status`, `updatedAt`),
    UNIQUE INDEX `Message_conversationId_seq_key`(`conversationId`, `seq`),
    UNIQUE INDEX `Message_userId_clientMessageId_key`(`userId`, `clientMessageId`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `UserConfig` (
    `userId` VARCHAR(191) COLLATE utf8mb4_bin NOT NULL,
    `presetId` VARCHAR(191) NULL,
    `model` VARCHAR(255) NULL,
    `baseUrl` TEXT NULL,
    `apiKeyEncrypted` TEXT NULL,
    `maxTokens` INTEGER NULL,
    `temperature` DOUBLE NULL,
    `systemPrompt` TEXT NULL,
    `contextTokens` INTEGER NULL,
    `createdAt` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updatedAt` DATETIME(3) NOT NULL,

    PRIMARY KEY (`userId`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- AddForeignKey
ALTER TABLE `Message` ADD CONSTRAINT `Message_conversationId_fkey` FOREIGN KEY (`conversationId`) REFERENCES `Conversation`(`id`) ON DELETE CASCADE ON UPDATE CASCADE;
