-- AlterTable
ALTER TABLE "Conversation" ADD COLUMN     "lastEventSeq" INTEGER NOT NULL DEFAULT -1;

-- CreateTable
CREATE TABLE "ViewerState" (
    "userId" VARCHAR(191) NOT NULL,
    "lastEventSeq" INTEGER NOT NULL DEFAULT -1,

    CONSTRAINT "ViewerState_pkey" PRIMARY KEY ("userId")
);
