// Headless Chromium scenario for the lambdad console; run by tests/integration/test_console.py.
// Sign in, create a function from a zip, run a test event, read the result, the logs and a chart,
// and prove that user strings (an env value, a log line) are shown as text, never as markup.
import { chromium } from "playwright-core";
import path from "node:path";

const env = process.env;
const shots = env.ARTIFACTS;
const fn = env.FN_NAME;
const xss = env.XSS;

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.setDefaultTimeout(30000);
  page.on("dialog", (dialog) => { problems.push(`dialog opened: ${dialog.message()}`); dialog.dismiss(); });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("request", (req) => {
    if (!req.url().startsWith(new URL(env.CONSOLE_URL).origin)) problems.push(`external request: ${req.url()}`);
  });
  const noMarkupInjected = async (where) => {
    const imgs = await page.locator("img").count();
    if (imgs) problems.push(`${where}: ${imgs} <img> element(s) injected`);
  };

  // Sign in.
  await page.goto(env.CONSOLE_URL);
  await page.getByLabel("Access key ID").fill(env.ACCESS_KEY);
  await page.getByLabel("Secret access key").fill(env.SECRET_KEY);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Functions" }).waitFor();

  // Create a function by uploading a zip.
  await page.getByRole("link", { name: "Create function" }).first().click();
  await page.getByLabel("Function name").fill(fn);
  await page.getByLabel("Runtime").selectOption("python3.11");
  await page.getByLabel("Handler").fill("handler.handler");
  await page.getByLabel("Code (.zip)").setInputFiles(env.ZIP_PATH);
  await page.getByRole("button", { name: "Create function" }).click();
  await page.locator("#event-payload").waitFor();

  // Run a test event and see the result.
  await page.locator("#event-payload").fill(JSON.stringify({ msg: xss }));
  await page.getByRole("button", { name: "Test", exact: true }).click();
  await page.locator("#test-payload").waitFor();
  const result = JSON.parse(await page.locator("#test-payload").textContent());
  if (result.echo.msg !== xss) problems.push(`result shows ${JSON.stringify(result)}`);
  const log = await page.locator("#test-log").textContent();
  if (!log.includes(xss) || !log.includes("REPORT RequestId")) problems.push(`log tail: ${log}`);
  const billed = await page.locator("dd", { hasText: / ms$/ }).count();
  if (billed < 2) problems.push("duration and billed duration not shown");
  await noMarkupInjected("test result");
  await page.screenshot({ path: path.join(shots, "2-test-result.png"), fullPage: true });

  // Configuration: an environment value with markup is saved and shown back as text.
  await page.getByRole("link", { name: "Configuration" }).click();
  await page.getByRole("button", { name: "Add variable" }).click();
  await page.locator(".env-key").last().fill("PAYLOAD");
  await page.locator(".env-value").last().fill(xss);
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText("Configuration saved.").waitFor();
  await page.reload();
  await page.locator(".env-value").first().waitFor();
  const shown = await page.locator(".env-value").first().inputValue();
  if (shown !== xss) problems.push(`env value shown as ${shown}`);
  await noMarkupInjected("configuration");
  await page.screenshot({ path: path.join(shots, "3-config.png"), fullPage: true });

  // Live logs, with the log line containing markup shown as text.
  await page.getByRole("link", { name: "Logs" }).click();
  await page.locator("#log-lines", { hasText: xss }).waitFor();
  await page.getByLabel("Filter").fill("REPORT");
  await page.waitForFunction(() => {
    const lines = [...document.querySelectorAll("#log-lines > div")];
    return lines.length > 0 && lines.every((line) => line.textContent.includes("REPORT"));
  });
  await noMarkupInjected("logs");
  await page.screenshot({ path: path.join(shots, "4-logs.png"), fullPage: true });

  // Charts.
  await page.getByRole("link", { name: "Monitor" }).click();
  await page.locator("figure.chart svg polyline").first().waitFor();
  await page.getByLabel("Range").selectOption("24h");
  const charts = await page.locator("figure.chart").count();
  if (charts < 6) problems.push(`only ${charts} charts`);
  await page.waitForFunction(() => document.querySelector("figure.chart svg")?.getAttribute("aria-label")?.includes("Invocations: maximum"));
  const label = await page.locator("figure.chart svg").first().getAttribute("aria-label");
  if (!/maximum [1-9]/.test(label)) problems.push(`invocations chart shows no invocation: ${label}`);
  await page.screenshot({ path: path.join(shots, "5-charts.png"), fullPage: true });

  // The list, with sparklines, on a phone-sized screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole("link", { name: "Functions" }).click();
  await page.getByRole("link", { name: fn }).waitFor();
  if (!(await page.locator("svg.spark").count())) problems.push("no sparklines");
  await page.screenshot({ path: path.join(shots, "1-functions.png"), fullPage: true });
} catch (err) {
  problems.push(`scenario failed: ${err.stack || err}`);
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("console scenario passed");
