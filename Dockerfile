# Parley: node:20 image, dependencies installed with the lockfile, Prisma clients generated at
# install time, the server compiled to dist/ (as `npm start` does), migrations applied at start
# unless MIGRATE_ON_START=false.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production HOST=0.0.0.0 PORT=4000
COPY package.json package-lock.json ./
COPY prisma ./prisma
COPY scripts ./scripts
RUN npm ci --include=dev && npm cache clean --force
COPY tsconfig.json ./
COPY src ./src
RUN node scripts/build.mjs
EXPOSE 4000
# The default SQLite database lives in /app/data: the unprivileged user must be able to create it.
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME /app/data
USER node
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD node -e "fetch('http://127.0.0.1:4000/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "--max-semi-space-size=64", "--enable-source-maps", "dist/server/main.js"]
