/** The project's tests launch Chromium as the Playwright kit does. */
export { launchChromium, type ChromiumLaunchOptions, type ChromiumProcess } from '../../src/playwright/chromium-process.js'
