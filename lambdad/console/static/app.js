// The lambdad console: a single-page app with hash routes. Every user string goes in as text (dom.js).
import { h, clear, table, kv } from "./dom.js";
import { sparkline, lineChart } from "./charts.js";

const main = document.getElementById("main");
const statusLine = document.getElementById("status");
const nav = document.getElementById("nav");
let csrf = null;
let timers = [];

// --- plumbing -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.code = body.error;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrf) headers["x-console-csrf"] = csrf;
  const response = await fetch(`/console/api/${path}`, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 && path !== "session") {
    csrf = null;
    location.hash = "#/signin";
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function say(message, error = false) {
  statusLine.textContent = message;
  statusLine.classList.toggle("error", error);
}

function page(title, ...content) {
  clear(main).append(h("h1", {}, title), ...content);
  document.title = `${title} · lambdad console`;
  main.focus();
}

async function readZip(input) {
  const file = input.files && input.files[0];
  if (!file) throw new Error("Choose a .zip file first.");
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function guard(action) {
  return async (event) => {
    if (event) event.preventDefault();
    try {
      await action(event);
    } catch (err) {
      say(err.message || String(err), true);
    }
  };
}

const fnPath = (name) => `functions/${encodeURIComponent(name)}`;
const when = (ms) => new Date(ms).toLocaleTimeString();

// --- routes ---------------------------------------------------------------------------------------

const routes = [
  [/^#\/signin(?:\/(.*))?$/, signIn],
  [/^#\/functions\/?$/, functionList],
  [/^#\/create$/, createFunction],
  [/^#\/functions\/([^/]+)(?:\/(\w+))?$/, functionPage],
  [/^#\/queues$/, queues],
  [/^#\/schedules$/, schedules],
  [/^#\/usage$/, usage],
];

async function route() {
  timers.forEach(clearInterval);
  timers = [];
  const hash = location.hash || "#/functions";
  if (!csrf && !hash.startsWith("#/signin")) {
    try {
      csrf = (await api("GET", "session")).csrfToken;
    } catch {
      location.hash = "#/signin";
      return;
    }
  }
  nav.hidden = !csrf;
  for (const [pattern, view] of routes) {
    const found = hash.match(pattern);
    if (found) {
      try {
        await view(...found.slice(1).map((part) => (part === undefined ? undefined : decodeURIComponent(part))));
      } catch (err) {
        say(err.message || String(err), true);
      }
      return;
    }
  }
  page("Not found", h("p", {}, "There is no such page."));
}

// --- sign in --------------------------------------------------------------------------------------

function signIn(reason) {
  nav.hidden = true;
  const key = h("input", { id: "key", name: "key", autocomplete: "username", required: true });
  const secret = h("input", { id: "secret", name: "secret", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "stack", onsubmit: guard(async () => {
    const data = await api("POST", "session", { accessKeyId: key.value.trim(), secretAccessKey: secret.value });
    csrf = data.csrfToken;
    secret.value = "";
    say("Signed in.");
    location.hash = "#/functions";
  }) },
  h("label", { for: "key" }, "Access key ID", key),
  h("label", { for: "secret" }, "Secret access key", secret),
  h("div", {}, h("button", { type: "submit" }, "Sign in")));
  page("Sign in", h("p", {}, reason === "link-expired"
    ? "That sign-in link was already used or has expired. Sign in with the server's access key pair."
    : "Use the access key pair printed by lambdad at start (also in credentials.json in its data directory)."), form);
  key.focus();
}

document.getElementById("signout").addEventListener("click", guard(async () => {
  await api("DELETE", "session");
  csrf = null;
  say("Signed out.");
  location.hash = "#/signin";
}));

// --- functions ------------------------------------------------------------------------------------

async function functionList() {
  const data = await api("GET", "functions");
  const rows = data.functions.map((fn) => [
    h("a", { href: `#/functions/${encodeURIComponent(fn.name)}` }, fn.name),
    fn.runtime || "—",
    `${fn.memorySize} MB`,
    fn.lastModified || "—",
    sparkline(fn.invocations, `Invocations of ${fn.name}`),
    sparkline(fn.errors, `Errors of ${fn.name}`, "errors"),
  ]);
  page("Functions", table(["Name", "Runtime", "Memory", "Last modified", "Invocations (1 h)", "Errors (1 h)"], rows),
    h("p", {}, h("a", { href: "#/create" }, "Create a function")));
  say(`${data.functions.length} function(s).`);
}

function createFunction() {
  const name = h("input", { id: "fn-name", required: true, pattern: "[A-Za-z0-9_-]{1,64}", "aria-describedby": "fn-name-help" });
  const runtime = h("select", { id: "fn-runtime" },
    ["python3.11", "python3.12", "python3.13", "nodejs20.x", "nodejs22.x", "provided.al2023"].map((r) => h("option", { value: r }, r)));
  const handler = h("input", { id: "fn-handler", value: "handler.handler", required: true });
  const memory = h("input", { id: "fn-memory", type: "number", min: 128, max: 10240, value: 128 });
  const timeout = h("input", { id: "fn-timeout", type: "number", min: 1, max: 900, value: 3 });
  const zip = h("input", { id: "fn-zip", type: "file", accept: ".zip,application/zip", required: true });
  const form = h("form", { class: "stack", onsubmit: guard(async () => {
    say("Creating…");
    await api("POST", "functions", {
      name: name.value.trim(), runtime: runtime.value, handler: handler.value.trim(),
      memorySize: Number(memory.value), timeout: Number(timeout.value), zipBase64: await readZip(zip),
    });
    say(`Created ${name.value.trim()}.`);
    location.hash = `#/functions/${encodeURIComponent(name.value.trim())}/test`;
  }) },
  h("label", { for: "fn-name" }, "Function name", name),
  h("small", { id: "fn-name-help", class: "muted" }, "Letters, digits, - and _; at most 64."),
  h("label", { for: "fn-runtime" }, "Runtime", runtime),
  h("label", { for: "fn-handler" }, "Handler", handler),
  h("label", { for: "fn-memory" }, "Memory (MB)", memory),
  h("label", { for: "fn-timeout" }, "Timeout (s)", timeout),
  h("label", { for: "fn-zip" }, "Code (.zip)", zip),
  h("div", {}, h("button", { type: "submit" }, "Create function")));
  page("Create function", form);
}

const TABS = [["config", "Configuration"], ["code", "Code"], ["test", "Test"], ["logs", "Logs"],
  ["metrics", "Monitor"], ["versions", "Versions and aliases"], ["triggers", "Triggers"]];

async function functionPage(name, tab = "config") {
  const data = await api("GET", fnPath(name));
  const tabs = h("nav", { class: "tabs", "aria-label": "Function sections" }, TABS.map(([id, label]) =>
    h("a", { href: `#/functions/${encodeURIComponent(name)}/${id}`, "aria-current": id === tab ? "page" : false }, label)));
  const body = h("section", { "aria-label": (TABS.find(([id]) => id === tab) || TABS[0])[1] });
  page(name, tabs, body);
  const views = { config: configTab, code: codeTab, test: testTab, logs: logsTab, metrics: metricsTab,
    versions: versionsTab, triggers: triggersTab };
  await (views[tab] || configTab)(name, data, body);
}

function configTab(name, data, body) {
  const config = data.configuration;
  const memory = h("input", { id: "cfg-memory", type: "number", min: 128, max: 10240, value: config.MemorySize });
  const timeout = h("input", { id: "cfg-timeout", type: "number", min: 1, max: 900, value: config.Timeout });
  const envList = h("div", { class: "stack", id: "env-list" });
  const addRow = (key = "", value = "") => {
    const n = envList.children.length;
    const k = h("input", { id: `env-k-${n}`, value: key, class: "env-key" });
    const v = h("input", { id: `env-v-${n}`, value: value, class: "env-value" });
    const row = h("div", { class: "env-row" }, h("label", { for: k.id }, "Name", k), h("label", { for: v.id }, "Value", v),
      h("button", { type: "button", class: "secondary", "aria-label": "Remove variable", onclick: () => row.remove() }, "Remove"));
    envList.append(row);
  };
  for (const [key, value] of Object.entries((config.Environment || {}).Variables || {})) addRow(key, value);
  const form = h("form", { class: "stack", onsubmit: guard(async () => {
    const environment = {};
    for (const row of envList.children) {
      const key = row.querySelector(".env-key").value.trim();
      if (key) environment[key] = row.querySelector(".env-value").value;
    }
    say("Saving…");
    await api("PUT", `${fnPath(name)}/configuration`, { memorySize: Number(memory.value), timeout: Number(timeout.value), environment });
    say("Configuration saved.");
  }) },
  h("label", { for: "cfg-memory" }, "Memory (MB)", memory),
  h("label", { for: "cfg-timeout" }, "Timeout (s)", timeout),
  h("fieldset", {}, h("legend", {}, "Environment variables"), envList,
    h("button", { type: "button", class: "secondary", onclick: () => addRow() }, "Add variable")),
  h("div", {}, h("button", { type: "submit" }, "Save")));
  body.append(kv([["ARN", config.FunctionArn], ["Runtime", config.Runtime], ["Handler", config.Handler],
    ["State", config.State], ["Last modified", config.LastModified], ["Code size", `${config.CodeSize} bytes`]]),
  h("h2", {}, "Edit"), form);
}

async function codeTab(name, data, body) {
  const zip = h("input", { id: "code-zip", type: "file", accept: ".zip,application/zip", required: true });
  const upload = h("form", { class: "stack", onsubmit: guard(async () => {
    say("Uploading…");
    await api("PUT", `${fnPath(name)}/code`, { zipBase64: await readZip(zip) });
    say("Code updated.");
    route();
  }) }, h("label", { for: "code-zip" }, "New code (.zip)", zip), h("div", {}, h("button", { type: "submit" }, "Upload")));
  const viewer = h("pre", { id: "file-view", tabindex: 0, "aria-label": "File contents" }, "Choose a file to read it.");
  const files = await api("GET", `${fnPath(name)}/files`);
  const rows = files.files.map((f) => [
    h("button", { type: "button", class: "link", onclick: guard(async () => {
      const file = await api("GET", `${fnPath(name)}/files?path=${encodeURIComponent(f.path)}`);
      viewer.textContent = file.text;
      say(`Showing ${f.path}.`);
    }) }, f.path),
    `${f.size} bytes`,
  ]);
  body.append(upload, h("h2", {}, "Package files"), table(["Path", "Size"], rows), h("h2", {}, "Contents"), viewer);
}

function savedEvents(name) {
  try {
    return JSON.parse(localStorage.getItem(`lambdad-events:${name}`) || "{}");
  } catch {
    return {};
  }
}

function testTab(name, data, body) {
  const events = savedEvents(name);
  const picker = h("select", { id: "event-pick" }, h("option", { value: "" }, "(new event)"),
    Object.keys(events).map((key) => h("option", { value: key }, key)));
  const eventName = h("input", { id: "event-name", value: "test" });
  const payload = h("textarea", { id: "event-payload", spellcheck: "false" }, '{\n  "hello": "world"\n}');
  picker.addEventListener("change", () => {
    if (picker.value) {
      eventName.value = picker.value;
      payload.value = events[picker.value];
    }
  });
  const result = h("div", { id: "test-result", "aria-live": "polite" });
  const save = () => {
    events[eventName.value.trim() || "test"] = payload.value;
    localStorage.setItem(`lambdad-events:${name}`, JSON.stringify(events));
  };
  const form = h("form", { class: "stack", onsubmit: guard(async () => {
    JSON.parse(payload.value);
    save();
    say("Invoking…");
    const out = await api("POST", `${fnPath(name)}/invoke`, { payload: payload.value });
    const failed = Boolean(out.functionError);
    clear(result).append(
      h("h2", { class: failed ? "error-text" : "ok-text" }, failed ? `Failed: ${out.functionError}` : "Succeeded"),
      kv([["Duration", out.durationMs === null ? "—" : `${out.durationMs} ms`],
        ["Billed duration", out.billedMs === null ? "—" : `${out.billedMs} ms`],
        ["Memory used", out.maxMemoryMb === null ? "—" : `${out.maxMemoryMb} of ${out.memoryMb} MB`],
        ["Init duration", out.initMs === null ? "—" : `${out.initMs} ms`]]),
      h("h2", {}, "Result"), h("pre", { id: "test-payload" }, out.payload),
      h("h2", {}, "Log tail"), h("pre", { id: "test-log" }, out.logTail));
    say(failed ? "The function returned an error." : "Invocation succeeded.");
  }) },
  h("label", { for: "event-pick" }, "Saved events", picker),
  h("label", { for: "event-name" }, "Event name", eventName),
  h("label", { for: "event-payload" }, "Event JSON", payload),
  h("div", { class: "row" }, h("button", { type: "submit", id: "run-test" }, "Test"),
    h("button", { type: "button", class: "secondary", onclick: guard(() => { save(); say("Event saved."); }) }, "Save event")));
  body.append(form, result);
}

function logsTab(name, data, body) {
  const filter = h("input", { id: "log-filter", type: "search", placeholder: "text to match" });
  const live = h("input", { id: "log-live", type: "checkbox", checked: true });
  const list = h("div", { class: "log", id: "log-lines", role: "log", "aria-live": "polite", tabindex: 0 });
  const load = async () => {
    const out = await api("GET", `${fnPath(name)}/logs?filter=${encodeURIComponent(filter.value)}`);
    clear(list).append(...out.events.map((e) => h("div", {}, h("time", {}, when(e.timestamp)), e.message)));
    if (!out.events.length) list.append(h("div", { class: "muted" }, "No log events in the last 24 hours."));
    list.scrollTop = list.scrollHeight;
  };
  filter.addEventListener("input", () => load().catch((err) => say(err.message, true)));
  timers.push(setInterval(() => { if (live.checked) load().catch(() => {}); }, 2000));
  body.append(h("div", { class: "row" }, h("label", { for: "log-filter" }, "Filter", filter),
    h("label", { for: "log-live" }, h("span", {}, "Live (every 2 s)"), live)), list);
  return load();
}

async function metricsTab(name, data, body) {
  const range = h("select", { id: "metrics-range" }, ["1h", "3h", "24h"].map((r) => h("option", { value: r }, r)));
  const grid = h("div", { class: "charts", id: "charts" });
  const units = { "Duration p50": " ms", "Duration p99": " ms" };
  const load = async () => {
    const out = await api("GET", `${fnPath(name)}/metrics?range=${range.value}`);
    clear(grid).append(...Object.entries(out.series).map(([title, values]) =>
      h("figure", { class: "chart" }, h("figcaption", {}, title), lineChart(title, out.timestamps, values, units[title] || ""))));
  };
  range.addEventListener("change", guard(load));
  timers.push(setInterval(() => load().catch(() => {}), 10000));
  body.append(h("label", { for: "metrics-range" }, "Range", range), grid);
  await load();
}

function versionsTab(name, data, body) {
  body.append(h("h2", {}, "Versions"),
    table(["Version", "Description", "Last modified"], data.versions.map((v) => [v.Version, v.Description || "—", v.LastModified])),
    h("h2", {}, "Aliases"),
    table(["Alias", "Version", "Description"], data.aliases.map((a) => [a.Name, a.FunctionVersion, a.Description || "—"])));
}

function triggersTab(name, data, body) {
  body.append(h("h2", {}, "Function URLs"),
    table(["URL", "Auth", "Invoke mode"], data.urls.map((u) => [u.FunctionUrl, u.AuthType, u.InvokeMode || "BUFFERED"])),
    h("h2", {}, "Queue mappings"),
    table(["Source", "State", "Batch size"], data.mappings.map((m) => [m.EventSourceArn, m.State, String(m.BatchSize)])),
    h("h2", {}, "Schedules"),
    table(["Name", "Group", "State"], data.schedules.map((sc) => [sc.Name, sc.GroupName, sc.State])));
}

// --- other pages ----------------------------------------------------------------------------------

async function queues() {
  const data = await api("GET", "queues");
  page("Queues", table(["Name", "Visible", "In flight", "Delayed"], data.queues.map((q) => [q.name,
    q.attributes.ApproximateNumberOfMessages, q.attributes.ApproximateNumberOfMessagesNotVisible,
    q.attributes.ApproximateNumberOfMessagesDelayed])));
}

async function schedules() {
  const data = await api("GET", "schedules");
  page("Schedules", table(["Name", "Group", "State", "Target"], data.schedules.map((sc) =>
    [sc.Name, sc.GroupName, sc.State, (sc.Target || {}).Arn])));
}

async function usage() {
  const data = await api("GET", "usage");
  page("Usage", h("p", {}, `Last ${Math.round(data.hours / 24)} days, at AWS Lambda list prices (x86_64, us-east-1). Total: $${data.totalCost.toFixed(6)}`),
    table(["Function", "Requests", "Errors", "GB-seconds", "Cost (USD)"], data.usage.map((u) =>
      [u.function, String(u.requests), String(u.errors), u.gbSeconds.toFixed(3), `$${u.cost.toFixed(6)}`])));
}

window.addEventListener("hashchange", route);
route();
