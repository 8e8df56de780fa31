// lambdad nodejs20.x runtime bootstrap.
//
// Speaks the Lambda Runtime API 2018-06-01 on $AWS_LAMBDA_RUNTIME_API and behaves like AWS's managed
// nodejs20.x runtime (whose open-source twin is npm `aws-lambda-ric`): handler loading and init error
// types/messages, callback/async/legacy context styles, callbackWaitsForEmptyEventLoop via 'beforeExit',
// console patching with `<ISO time>\t<request id>\t<LEVEL>\t<message>` lines, error payloads
// `{errorType, errorMessage, trace}`, and exit codes 129 (uncaught exception) / 128 (unhandled rejection).
// Node 20 built-ins only.

import http from "node:http";
import net from "node:net";
import fs from "node:fs";
import path from "node:path";
import util from "node:util";
import Module, { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

import { HttpResponseStream, createStreamingResponse } from "./streaming.mjs";

const RUNTIME_DIR = path.dirname(fileURLToPath(import.meta.url));
const TASK_ROOT = process.env.LAMBDA_TASK_ROOT || "/var/task";

// ---------------------------------------------------------------------------------------------------------
// Module search path, as the managed runtime sets it (CommonJS only: ESM ignores NODE_PATH, as on AWS).
if (!process.env.NODE_PATH) {
  process.env.NODE_PATH = [
    "/opt/nodejs/node20/node_modules",
    "/opt/nodejs/node_modules",
    "/var/runtime/node_modules",
    "/var/runtime",
    TASK_ROOT,
  ].join(":");
  Module._initPaths();
}

// The require() used for user code. AWS's runtime lives at /var/runtime/index.mjs, so its
// MODULE_NOT_FOUND messages end in "Require stack:\n- /var/runtime/index.mjs"; keep that text.
const userRequire = createRequire(path.join(RUNTIME_DIR, "index.mjs"));

// ---------------------------------------------------------------------------------------------------------
// Errors

function runtimeError(name) {
  const cls = class extends Error {};
  Object.defineProperty(cls, "name", { value: name });
  cls.prototype.name = `Runtime.${name}`;
  return cls;
}
const ImportModuleError = runtimeError("ImportModuleError");
const HandlerNotFound = runtimeError("HandlerNotFound");
const MalformedHandlerName = runtimeError("MalformedHandlerName");
const UserCodeSyntaxError = runtimeError("UserCodeSyntaxError");
const MalformedStreamingHandler = runtimeError("MalformedStreamingHandler");
class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
UnhandledPromiseRejection.prototype.name = "Runtime.UnhandledPromiseRejection";

const esc7f = (s) => (typeof s === "string" ? s.replace(/\x7F/g, "%7F") : s);

function looksLikeError(o) {
  return (
    o &&
    typeof o.name === "string" &&
    typeof o.message === "string" &&
    typeof o.stack === "string" &&
    o.name &&
    o.message &&
    o.stack
  );
}

// The Runtime API error body, as aws-lambda-ric's Errors.toRapidResponse builds it.
function toRapidResponse(error) {
  try {
    if (util.types.isNativeError(error) || looksLikeError(error)) {
      return {
        errorType: esc7f(error.name),
        errorMessage: esc7f(error.message),
        trace: esc7f(error.stack).split("\n"),
      };
    }
    return { errorType: typeof error, errorMessage: error.toString(), trace: [] };
  } catch {
    return {
      errorType: "handled",
      errorMessage:
        "callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack",
    };
  }
}

const intoError = (err) => (err instanceof Error ? err : new Error(err));

function enumerableError(value) {
  if (value instanceof Error) {
    const out = Object.assign(
      { errorType: value.name, errorMessage: value.message, code: value.code },
      value,
    );
    if (typeof value.stack === "string") out.stack = value.stack.split("\n");
    return out;
  }
  return value;
}

function toFormatted(error) {
  try {
    return "\t" + JSON.stringify(error, (_k, v) => enumerableError(v));
  } catch {
    return "\t" + JSON.stringify(toRapidResponse(error));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Logging

const REQUEST_ID = Symbol.for("aws.lambda.runtime.requestId");
const TENANT_ID = Symbol.for("aws.lambda.runtime.tenantId");

const LEVELS = Object.freeze({
  TRACE: { name: "TRACE", priority: 1, tlvMask: 0b00100 },
  DEBUG: { name: "DEBUG", priority: 2, tlvMask: 0b01000 },
  INFO: { name: "INFO", priority: 3, tlvMask: 0b01100 },
  WARN: { name: "WARN", priority: 4, tlvMask: 0b10000 },
  ERROR: { name: "ERROR", priority: 5, tlvMask: 0b10100 },
  FATAL: { name: "FATAL", priority: 6, tlvMask: 0b11000 },
});

function jsonErrorReplacer(_k, value) {
  if (value instanceof Error) {
    return Object.assign(
      {
        errorType: value?.constructor?.name ?? "UnknownError",
        errorMessage: value.message,
        stackTrace: typeof value.stack === "string" ? value.stack.split("\n") : value.stack,
      },
      value,
    );
  }
  return value;
}

function formatJson(level, time, params) {
  const out = { timestamp: time, level: level.name, requestId: globalThis[REQUEST_ID] };
  const tenantId = globalThis[TENANT_ID];
  if (tenantId !== undefined && tenantId !== null) out.tenantId = tenantId;
  if (params.length === 1) {
    out.message = params[0];
    try {
      return JSON.stringify(out, jsonErrorReplacer);
    } catch {
      out.message = util.format(out.message);
      return JSON.stringify(out);
    }
  }
  out.message = util.format(...params);
  for (const p of params) {
    if (p instanceof Error) {
      out.errorType = p?.constructor?.name ?? "UnknownError";
      out.errorMessage = p.message;
      out.stackTrace = typeof p.stack === "string" ? p.stack.split("\n") : [];
      break;
    }
  }
  return JSON.stringify(out);
}

const formatText = (level, time, params) =>
  `${time}\t${globalThis[REQUEST_ID]}\t${level.name}\t${util.format(...params)}`;

let logErrorStructured = (msg, err) => console.error(msg, toFormatted(intoError(err)));

function patchConsole() {
  const json = (process.env.AWS_LAMBDA_LOG_FORMAT || "").toUpperCase() === "JSON";
  const format = json ? formatJson : formatText;
  let emit;
  const fdEnv = process.env._LAMBDA_TELEMETRY_LOG_FD;
  if (fdEnv !== undefined) {
    // Telemetry fd: one framed record per message (newlines kept inside it).
    const fd = parseInt(fdEnv, 10);
    delete process.env._LAMBDA_TELEMETRY_LOG_FD;
    const frameType = json ? 0xa55a0002 : 0xa55a0003;
    const head = Buffer.alloc(16);
    emit = (level, params) => {
      const date = new Date();
      const line = format(level, date.toISOString(), params) + (json ? "" : "\n");
      const body = Buffer.from(line, "utf8");
      head.writeUInt32BE((frameType | level.tlvMask) >>> 0, 0);
      head.writeInt32BE(body.length, 4);
      head.writeBigInt64BE(BigInt(date.valueOf()) * 1000n, 8);
      fs.writeSync(fd, head);
      fs.writeSync(fd, body);
    };
  } else {
    // stdout: one line per message, inner newlines turned into '\r' (as aws-lambda-ric does).
    emit = (level, params) => {
      const line = format(level, new Date().toISOString(), params).replace(/\n/g, "\r");
      process.stdout.write(line + "\n");
    };
  }
  const minLevel = LEVELS[(process.env.AWS_LAMBDA_LOG_LEVEL || "").toUpperCase()] ?? LEVELS.TRACE;
  const nop = () => {};
  const make = (level) =>
    level.priority >= minLevel.priority ? (...params) => emit(level, params) : nop;
  console.trace = make(LEVELS.TRACE);
  console.debug = make(LEVELS.DEBUG);
  console.info = make(LEVELS.INFO);
  console.log = console.info;
  console.warn = make(LEVELS.WARN);
  console.error = make(LEVELS.ERROR);
  console.fatal = (...params) => emit(LEVELS.FATAL, params);
  logErrorStructured = json
    ? (_msg, err) => console.error(intoError(err))
    : (msg, err) => console.error(msg, toFormatted(intoError(err)));
}

// ---------------------------------------------------------------------------------------------------------
// Runtime API client

function serializeResponse(body) {
  let s;
  try {
    s = JSON.stringify(body === undefined ? null : body);
  } catch {
    throw new Error("Unable to stringify response body");
  }
  // JSON.stringify(function/symbol) gives undefined; AWS's native client rejects that argument.
  if (typeof s !== "string") throw new TypeError("Wrong arguments");
  return s;
}

class RuntimeClient {
  constructor(hostPort) {
    const i = hostPort.lastIndexOf(":");
    this.hostname = hostPort.slice(0, i);
    this.port = parseInt(hostPort.slice(i + 1), 10);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 }); // streaming responses' (chunked)
    this.socket = null;
    this.pending = [];
  }

  // One kept-alive connection that speaks just the HTTP/1.1 the agent answers with: a status line,
  // headers and a Content-Length body. Node's http client spent several hundred microseconds of CPU
  // on each of an invoke's two requests; a 128 MB function has 7% of a CPU. Requests queue on the one
  // connection, answered in order (as the single-socket http.Agent did). The socket holds the event
  // loop open only while a request is pending, so 'beforeExit' still tells when the loop is empty.
  request(method, urlPath, body, headers = {}) {
    return new Promise((resolve, reject) => {
      let head = `${method} ${urlPath} HTTP/1.1\r\nHost: ${this.hostname}:${this.port}\r\n`;
      for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
      let payload;
      if (body !== undefined) {
        payload = Buffer.from(body, "utf8");
        if (!("Content-Type" in headers)) head += "Content-Type: application/json\r\n";
        head += `Content-Length: ${payload.length}\r\n`;
      }
      head += "\r\n";
      const socket = this.socket || this.connect();
      socket.ref();
      this.pending.push({ resolve, reject });
      socket.write(payload ? Buffer.concat([Buffer.from(head, "latin1"), payload]) : head);
    });
  }

  connect() {
    const socket = net.connect({ host: this.hostname, port: this.port });
    socket.setNoDelay(true);
    this.socket = socket;
    this.chunks = [];
    this.size = 0;
    this.needed = 0;
    socket.on("data", (chunk) => this.onData(chunk));
    const broken = (error) => {
      if (this.socket === socket) this.socket = null;
      const waiting = this.pending;
      this.pending = [];
      for (const { reject } of waiting) reject(error || new Error("Runtime API connection closed"));
    };
    socket.on("error", broken);
    socket.on("close", () => broken());
    return socket;
  }

  onData(chunk) {
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size < this.needed) return; // a large body still arriving: joined once, when whole
    let data = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.size);
    for (;;) {
      const end = data.indexOf("\r\n\r\n");
      const lines = end < 0 ? [] : data.toString("latin1", 0, end).split("\r\n");
      const headers = {};
      for (let i = 1; i < lines.length; i++) {
        const colon = lines[i].indexOf(":");
        if (colon > 0) headers[lines[i].slice(0, colon).trim().toLowerCase()] = lines[i].slice(colon + 1).trim();
      }
      const whole = end + 4 + parseInt(headers["content-length"] || "0", 10);
      if (end < 0 || data.length < whole) {
        this.chunks = [data];
        this.size = data.length;
        this.needed = end < 0 ? 0 : whole;
        return;
      }
      const body = data.toString("utf8", end + 4, whole);
      data = data.subarray(whole);
      const status = parseInt(lines[0].split(" ", 3)[1], 10);
      const waiter = this.pending.shift();
      if (this.pending.length === 0) this.socket?.unref();
      waiter?.resolve({ status, headers, body });
    }
  }

  async nextInvocation() {
    for (;;) {
      const res = await this.request("GET", "/2018-06-01/runtime/invocation/next");
      if (res.status === 200) return { bodyJson: res.body, headers: res.headers };
      // The Runtime API only answers non-200 on misuse; nothing sensible to do but report and stop.
      throw new Error(`Runtime API /next returned ${res.status}: ${res.body}`);
    }
  }

  postInvocationResponse(result, id) {
    const body = serializeResponse(result); // throws synchronously, as AWS's client does
    return this.request("POST", `/2018-06-01/runtime/invocation/${encodeURIComponent(id)}/response`, body);
  }

  postInvocationError(error, id) {
    const payload = toRapidResponse(error);
    return this.request(
      "POST",
      `/2018-06-01/runtime/invocation/${encodeURIComponent(id)}/error`,
      serializeResponse(payload),
      { "Lambda-Runtime-Function-Error-Type": payload.errorType },
    );
  }

  postInitError(error) {
    const payload = toRapidResponse(error);
    return this.request("POST", "/2018-06-01/runtime/init/error", serializeResponse(payload), {
      "Lambda-Runtime-Function-Error-Type": payload.errorType,
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Handler loading (mirrors aws-lambda-ric's UserFunction.load)

const HANDLER_STREAMING = Symbol.for("aws.lambda.runtime.handler.streaming");
const HANDLER_HIGHWATERMARK = Symbol.for("aws.lambda.runtime.handler.streaming.highWaterMark");
const STREAM_RESPONSE = "response";

function installAwslambdaGlobal() {
  const off = process.env.AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA;
  if (off === "1" || off === "true") return;
  globalThis.awslambda = {
    streamifyResponse: (handler, options) => {
      handler[HANDLER_STREAMING] = STREAM_RESPONSE;
      if (typeof options?.highWaterMark === "number") {
        handler[HANDLER_HIGHWATERMARK] = parseInt(options.highWaterMark, 10);
      }
      return handler;
    },
    HttpResponseStream,
  };
}

function folderHasTypeModule(folder) {
  if (folder.endsWith("/node_modules")) return false;
  const pj = path.join(folder, "package.json");
  if (fs.existsSync(pj)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(pj));
      if (pkg) return pkg.type === "module";
    } catch (e) {
      console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, e);
      return false;
    }
  }
  if (folder === "/") return false;
  return folderHasTypeModule(path.resolve(folder, ".."));
}

const tryRequireFile = (file, ext = "") =>
  fs.existsSync(file + ext) ? userRequire(file + ext) : undefined;

async function tryImportFile(file, ext = "") {
  return fs.existsSync(file + ext) ? await import(pathToFileURL(file + ext).href) : undefined;
}

async function tryLoad(appRoot, moduleRoot, moduleName) {
  const base = path.resolve(appRoot, moduleRoot, moduleName);
  const extensionless = tryRequireFile(base);
  if (extensionless) return extensionless;
  const typeModule = fs.existsSync(base + ".js") && folderHasTypeModule(path.dirname(base + ".js"));
  if (!typeModule) {
    const cjs = tryRequireFile(base, ".js");
    if (cjs) return cjs;
  }
  const loaded =
    (typeModule && (await tryImportFile(base, ".js"))) ||
    (await tryImportFile(base, ".mjs")) ||
    tryRequireFile(base, ".cjs");
  if (loaded) return loaded;
  // Node-style resolution: node_modules under the task root, NODE_PATH (layers), builtins.
  return userRequire(userRequire.resolve(moduleName, { paths: [appRoot, moduleRoot] }));
}

async function loadHandler(appRoot, fullHandler) {
  if (fullHandler.includes("..")) {
    throw new MalformedHandlerName(
      `'${fullHandler}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const moduleAndHandler = path.basename(fullHandler);
  const moduleRoot = fullHandler.substring(0, fullHandler.indexOf(moduleAndHandler));
  const match = moduleAndHandler.match(/^([^.]*)\.(.*)$/);
  if (!match) throw new MalformedHandlerName("Bad handler");
  const [, moduleName, handlerPath] = match;

  installAwslambdaGlobal();
  let app;
  try {
    app = await tryLoad(appRoot, moduleRoot, moduleName);
  } catch (e) {
    if (e instanceof SyntaxError) throw new UserCodeSyntaxError(e);
    if (e && e.code === "MODULE_NOT_FOUND") throw new ImportModuleError(e);
    throw e;
  }
  const fn = handlerPath.split(".").reduce((o, k) => o && o[k], app);
  if (!fn) throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  if (typeof fn !== "function") throw new HandlerNotFound(`${fullHandler} is not a function`);
  return fn;
}

function streamingMode(fn) {
  const v = fn[HANDLER_STREAMING];
  if (v === undefined || v === null || v === false) return false;
  if (v === STREAM_RESPONSE) return STREAM_RESPONSE;
  throw new MalformedStreamingHandler("Only response streaming is supported.");
}

// ---------------------------------------------------------------------------------------------------------
// Invocation

// 'beforeExit' fires when the event loop has nothing left to do: that is how "wait for the empty event
// loop" is implemented. Our own idle keep-alive socket must not hold the loop open (Node unrefs free
// agent sockets), and while /next is pending the loop is non-empty, so the hook only fires mid-invoke.
let beforeExit = () => {};
const resetBeforeExit = () => {
  beforeExit = () => {};
};
process.on("beforeExit", () => beforeExit());

const errorCallbacks = {
  uncaughtException: (error) => exitAfter(client.postInitError(error), 129),
  unhandledRejection: (error) => exitAfter(client.postInitError(error), 128),
};

function exitAfter(promise, code) {
  promise.then(
    () => process.exit(code),
    () => process.exit(code),
  );
}

function parseJsonHeader(value, name) {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

function invokeData(headers) {
  const id = headers["lambda-runtime-aws-request-id"];
  if (!id) throw new Error("invocation id is missing or invalid");
  const deadline = Number(headers["lambda-runtime-deadline-ms"]);
  return {
    id,
    tenantId: headers["lambda-runtime-aws-tenant-id"],
    trace: headers["lambda-runtime-trace-id"],
    attach(ctx) {
      if (this.trace) process.env._X_AMZN_TRACE_ID = this.trace;
      else delete process.env._X_AMZN_TRACE_ID;
      return Object.assign(
        ctx,
        {
          functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
          functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
          memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
          logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
          logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
        },
        {
          clientContext: parseJsonHeader(headers["lambda-runtime-client-context"], "ClientContext"),
          identity: parseJsonHeader(headers["lambda-runtime-cognito-identity"], "CognitoIdentity"),
          invokedFunctionArn: headers["lambda-runtime-invoked-function-arn"],
          awsRequestId: id,
          tenantId: headers["lambda-runtime-aws-tenant-id"],
          getRemainingTimeInMillis: () => deadline - Date.now(),
        },
      );
    },
  };
}

function swallow(p) {
  // A failed POST to the Runtime API means the agent is gone: nothing to report to, so exit.
  p.catch((err) => {
    process.stderr.write(`lambdad runtime: Runtime API request failed: ${err && err.message}\n`);
    process.exit(1);
  });
}

// Builds (callback, context-with-succeed/fail/done, markCompleted) like aws-lambda-ric's CallbackContext.
function buildCallbackContext(id, scheduleNext) {
  const postError = (err) => {
    logErrorStructured("Invoke Error", err);
    swallow(client.postInvocationError(err, id).then(scheduleNext));
  };
  let completed = false;
  const complete = (result) => {
    if (completed) {
      console.error(
        "Invocation has already been reported as done. Cannot call complete more than once per invocation.",
      );
      return;
    }
    completed = true;
    swallow(client.postInvocationResponse(result, id).then(scheduleNext));
  };
  let waitForEmptyEventLoop = true;
  const callback = (err, result) => {
    resetBeforeExit();
    if (err !== undefined && err !== null) {
      postError(err);
    } else if (!waitForEmptyEventLoop) {
      complete(result);
    } else {
      beforeExit = () => setImmediate(() => complete(result));
    }
  };
  const done = (err, result) => {
    resetBeforeExit();
    if (err !== undefined && err !== null) postError(err);
    else complete(result);
  };
  const context = {
    get callbackWaitsForEmptyEventLoop() {
      return waitForEmptyEventLoop;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waitForEmptyEventLoop = value;
    },
    succeed: (result) => done(null, result),
    fail: (err) => (err === undefined || err === null ? done("handled") : done(err, null)),
    done,
  };
  // Only the first of callback/succeed/fail/done counts. The flag is set after the call returns, so a
  // call that throws (e.g. unserializable result) leaves the door open for the error path.
  let finished = false;
  const once =
    (fn) =>
    (...args) => {
      if (!finished) {
        fn(...args);
        finished = true;
      }
    };
  context.succeed = once(context.succeed);
  context.fail = once(context.fail);
  context.done = once(context.done);
  return [once(callback), context, () => (completed = true)];
}

const isPromise = (o) => o && o.then && typeof o.then === "function";

function setInvokeErrorCallbacks(id) {
  errorCallbacks.uncaughtException = (error) => exitAfter(client.postInvocationError(error, id), 129);
  errorCallbacks.unhandledRejection = (error) => exitAfter(client.postInvocationError(error, id), 128);
}

async function handleOnce(handler) {
  const { bodyJson, headers } = await client.nextInvocation();
  const inv = invokeData(headers);
  globalThis[REQUEST_ID] = inv.id;
  globalThis[TENANT_ID] = inv.tenantId;
  const [callback, context, markCompleted] = buildCallbackContext(inv.id, scheduleIteration);
  try {
    setInvokeErrorCallbacks(inv.id);
    // A sync handler that never calls back: respond null once the event loop drains.
    beforeExit = () => {
      markCompleted();
      swallow(client.postInvocationResponse(null, inv.id).then(scheduleIteration));
    };
    const result = handler(JSON.parse(bodyJson), inv.attach(context), callback);
    if (isPromise(result)) {
      result.then(context.succeed, context.fail).catch(context.fail);
    }
  } catch (err) {
    callback(err);
  }
}

async function handleOnceStreaming(handler, metadata) {
  const { bodyJson, headers } = await client.nextInvocation();
  const inv = invokeData(headers);
  globalThis[REQUEST_ID] = inv.id;
  globalThis[TENANT_ID] = inv.tenantId;
  setInvokeErrorCallbacks(inv.id);
  let waitForEmptyEventLoop = true;
  const ctx = {
    get callbackWaitsForEmptyEventLoop() {
      return waitForEmptyEventLoop;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waitForEmptyEventLoop = value;
    },
  };
  const next = () => {
    resetBeforeExit();
    if (!waitForEmptyEventLoop) scheduleIteration();
    else beforeExit = () => setImmediate(scheduleIteration);
  };
  beforeExit = () => scheduleIteration();
  const { stream, done, fail } = createStreamingResponse({
    agent: client.agent,
    hostname: client.hostname,
    port: client.port,
    path: `/2018-06-01/runtime/invocation/${encodeURIComponent(inv.id)}/response`,
    highWaterMark: metadata.highWaterMark,
    toRapidResponse,
  });
  const failWith = async (err) => {
    logErrorStructured("Invoke Error", err);
    await fail(err);
    next();
  };
  try {
    const out = handler(JSON.parse(bodyJson), stream, inv.attach(ctx));
    if (!isPromise(out)) {
      await failWith("Streaming does not support non-async handlers.");
      return;
    }
    const result = await out;
    if (result !== undefined) console.warn("Streaming handlers ignore return values.");
    await done;
    if (!stream.writableFinished) {
      await failWith("Response stream is not finished.");
      return;
    }
    next();
  } catch (err) {
    await failWith(err);
  }
}

let runOnce;
function scheduleIteration() {
  setImmediate(() => {
    runOnce().then(
      () => {},
      (err) => {
        console.log(`Unexpected Top Level Error: ${err.toString()}`);
        errorCallbacks.uncaughtException(err);
      },
    );
  });
}

// ---------------------------------------------------------------------------------------------------------
// _X_AMZN_TRACE_ID changes on every invoke. Writing it to the real process.env is a setenv(), and
// glibc keeps every value setenv() was ever given: about 170 bytes per invoke, a 128 MB function
// out of memory after a few hundred thousand invokes. So process.env becomes a view of the real
// environment that keeps this one variable in JavaScript; code and child processes (which get
// process.env by enumeration) see it as before.

function keepTraceIdInJavaScript() {
  const name = "_X_AMZN_TRACE_ID";
  const real = process.env;
  let value = real[name];
  delete real[name];
  process.env = new Proxy(real, {
    get: (target, key) => (key === name ? value : Reflect.get(target, key)),
    set(target, key, newValue) {
      if (key !== name) return Reflect.set(target, key, newValue);
      value = String(newValue); // process.env turns every value into a string
      return true;
    },
    has: (target, key) => (key === name ? value !== undefined : Reflect.has(target, key)),
    deleteProperty(target, key) {
      if (key !== name) return Reflect.deleteProperty(target, key);
      value = undefined;
      return true;
    },
    ownKeys: (target) => [...Reflect.ownKeys(target), ...(value === undefined ? [] : [name])],
    getOwnPropertyDescriptor(target, key) {
      if (key !== name) return Reflect.getOwnPropertyDescriptor(target, key);
      return value === undefined ? undefined : { value, writable: true, enumerable: true, configurable: true };
    },
    defineProperty(target, key, descriptor) {
      if (key !== name) return Reflect.defineProperty(target, key, descriptor);
      value = String(descriptor.value);
      return true;
    },
  });
}

// ---------------------------------------------------------------------------------------------------------
// Main

keepTraceIdInJavaScript();
patchConsole();
const client = new RuntimeClient(process.env.AWS_LAMBDA_RUNTIME_API || "127.0.0.1:9001");

process.on("uncaughtException", (error) => {
  logErrorStructured("Uncaught Exception", error);
  errorCallbacks.uncaughtException(error);
});
process.on("unhandledRejection", (reason, promise) => {
  const error = new UnhandledPromiseRejection(reason, promise);
  logErrorStructured("Unhandled Promise Rejection", error);
  errorCallbacks.unhandledRejection(error);
});

let handler;
let metadata;
try {
  handler = await loadHandler(TASK_ROOT, process.env._HANDLER || "");
  metadata = {
    streaming: streamingMode(handler),
    highWaterMark: (() => {
      const h = parseInt(handler[HANDLER_HIGHWATERMARK], 10);
      return Number.isNaN(h) ? undefined : h;
    })(),
  };
} catch (error) {
  // AWS lets this reach its 'uncaughtException' hook: logged as "Uncaught Exception", posted to
  // /init/error, exit 129.
  logErrorStructured("Uncaught Exception", error);
  errorCallbacks.uncaughtException(error);
}
if (handler) {
  runOnce =
    metadata.streaming === STREAM_RESPONSE
      ? () => handleOnceStreaming(handler, metadata)
      : () => handleOnce(handler);
  scheduleIteration();
}
