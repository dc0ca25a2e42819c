-- DropIndex
DROP INDEX "Message_status_updatedAt_idx";

-- AlterTable
ALTER TABLE "Message" ADD COLUMN "leaseExpiresAt" DATETIME;

-- CreateIndex
CREATE INDEX "Message_status_leaseExpiresAt_idx" ON "Message"("status", "leaseExpiresAt");
