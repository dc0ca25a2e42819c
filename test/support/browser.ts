// Debian's Chromium through playwright-core, which must never download a browser of its own.
import { chromium, type Browser } from 'playwright-core';

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** `hostRules`: Chromium's --host-resolver-rules, e.g. to give a page a non-loopback origin. */
export function launchChromium({ hostRules }: { hostRules?: string } = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: hostRules ? [...ARGS, `--host-resolver-rules=${hostRules}`] : ARGS,
  });
}
