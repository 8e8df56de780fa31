// Response streaming for awslambda.streamifyResponse handlers (Runtime API "streaming" response mode):
// the response stream is the chunked POST to /invocation/{id}/response itself; a failure mid-stream is
// reported in the Lambda-Runtime-Function-Error-Type / -Error-Body trailers.

import http from "node:http";

const METADATA_PRELUDE_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response";
const DELIMITER_LEN = 8;

export class HttpResponseStream {
  static from(underlyingStream, prelude) {
    underlyingStream.setContentType(METADATA_PRELUDE_CONTENT_TYPE);
    const metadataPrelude = JSON.stringify(prelude);
    underlyingStream._onBeforeFirstWrite = (write) => {
      write(metadataPrelude);
      write(new Uint8Array(DELIMITER_LEN));
    };
    return underlyingStream;
  }
}

export function createStreamingResponse({ agent, hostname, port, path, highWaterMark, toRapidResponse }) {
  const req = http.request({
    agent,
    hostname,
    port,
    path,
    method: "POST",
    highWaterMark,
    headers: {
      "Content-Type": "application/octet-stream",
      "Lambda-Runtime-Function-Response-Mode": "streaming",
      "Transfer-Encoding": "chunked",
      Trailer: ["Lambda-Runtime-Function-Error-Type", "Lambda-Runtime-Function-Error-Body"],
    },
  });
  const done = new Promise((resolve, reject) => {
    req.on("response", (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", reject);
  });
  done.catch(() => {});

  let headersSent = false;
  req.setContentType = (type) => {
    if (headersSent) throw new Error("Cannot set content-type, too late.");
    req.setHeader("Content-Type", type);
  };
  const rawWrite = req.write.bind(req);
  req.write = (chunk, encoding, cb) => {
    if (!headersSent) {
      headersSent = true;
      if (typeof req._onBeforeFirstWrite === "function") {
        req._onBeforeFirstWrite((c) => rawWrite(c));
      }
    }
    return rawWrite(chunk, encoding, cb);
  };
  const rawEnd = req.end.bind(req);
  req.end = (chunk, encoding, cb) => {
    if (typeof chunk === "function") return req.end(undefined, undefined, chunk);
    if (chunk !== undefined && chunk !== null) req.write(chunk, encoding);
    headersSent = true;
    return rawEnd(cb);
  };

  const fail = async (err) => {
    if (!req.writableEnded) {
      const payload = toRapidResponse(err);
      req.addTrailers({
        "Lambda-Runtime-Function-Error-Type": payload.errorType,
        "Lambda-Runtime-Function-Error-Body": Buffer.from(JSON.stringify(payload)).toString("base64"),
      });
      rawEnd();
    }
    try {
      await done;
    } catch {
      // agent gone; the caller moves on to /next, which will fail and exit
    }
  };
  return { stream: req, done, fail };
}
