// streamvideo serve --web: the page's side. One WebSocket to the server (docs/web.md): JSON text messages both
// ways for control, one binary message per chunk of frames. The server owns the key map: the page sends the keys
// held (KeyboardEvent.code names, oldest press first) and the pointer, and the server turns them into the model's
// action exactly as `streamvideo play` does. Frames are shown at the model's frame rate; the HUD says how fast
// they come, which chunk is on screen, its NFE and generation time, and the latency from a key press to the first
// frame drawn that was generated with it.
"use strict";

const CHUNK_HEADER_BYTES = 21;     // index u32, input u32, seconds f32, nfe u16, count, height, width u16, encoding u8
const ENCODINGS = ["raw", "jpeg"];
const RECORD_SIDE = 512;           // a recording's longer side, in pixels (whole multiples of the frame size)
const FPS_WINDOW_MS = 2000;        // the HUD's FPS counts the frames drawn over this long
const MIN_STAGE_WIDTH = 512;       // pixels: room for the prompt box and the buttons under a small canvas

const $ = (id) => document.getElementById(id);
const canvas = $("screen");
const context = canvas.getContext("2d", { alpha: false });

// Everything the page knows, in one object: the console and the browser test read it as window.streamvideo.
const state = {
  connected: false,
  session: null,            // the session message: model, size, fps, action space, keys, help
  keys: new Set(),          // the keys the model's key map reads
  held: [],                 // those held now, oldest press first
  pointer: null,            // [x, y] in [-1, 1] while the left button is held on the canvas (Box actions)
  seq: 0,                   // number of the last input message sent
  pendingKeys: [],          // key presses not yet seen on screen: {seq, time}
  latencies: [],            // ms from a key press to the first frame drawn that was generated with it
  queue: [],                // chunks received, not yet all drawn
  framesDrawn: 0,
  drawTimes: [],
  lastChunk: null,          // {index, nfe, seconds, input} of the frame on screen
  prompt: "",
  paused: false,
  lastError: null,
  lastRecording: null,      // {size, type} of the last WebM made
};
window.streamvideo = state;

// ------------------------------------------------------------------------------------------- the connection

const socketUrl = new URL("ws", location.href);
socketUrl.protocol = location.protocol === "https:" ? "wss:" : "ws:";
const socket = new WebSocket(socketUrl);
socket.binaryType = "arraybuffer";

function send(message) {
  if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

socket.addEventListener("open", () => { state.connected = true; setStatus("connected: opening a session…"); });
socket.addEventListener("close", (event) => {
  state.connected = false;
  setStatus(`disconnected (${event.code}${event.reason ? ": " + event.reason : ""}): reload the page to play again`,
            true);
});
socket.addEventListener("message", (event) => {
  if (typeof event.data === "string") onControl(JSON.parse(event.data));
  else onChunk(event.data);
});

function openOptions() {
  // ?model=...&prompt=...&seed=...&encoding=jpeg&start_frames=false in the page's URL choose how the session opens
  const options = {};
  const query = new URLSearchParams(location.search);
  for (const name of ["model", "prompt", "mode", "schedule", "encoding"]) {
    if (query.has(name)) options[name] = query.get(name);
  }
  for (const name of ["seed", "quality"]) {
    if (query.has(name)) options[name] = Number(query.get(name));
  }
  if (query.has("start_frames")) options.start_frames = !["0", "false", "no"].includes(query.get("start_frames"));
  return options;
}

const handlers = {
  hello(message) {
    const select = $("model");
    for (const model of message.models) select.add(new Option(model, model));
    $("model-choice").hidden = message.models.length < 2;
    $("prompt").maxLength = message.max_prompt_chars;
    const options = openOptions();
    if (options.model) select.value = options.model;
    send({ op: "open", ...options });
  },
  session(message) {
    state.session = message;
    state.keys = new Set(message.keys);
    state.held = [];
    state.queue = [];
    state.pendingKeys = [];
    state.paused = false;
    $("pause").classList.remove("on");
    $("model").value = message.model;
    $("keys").textContent = message.help.join("\n") || "(this model takes no action)";
    canvas.width = message.width;
    canvas.height = message.height;
    frameImage = context.createImageData(message.width, message.height);
    fitCanvas();
    const space = message.action_space;
    setStatus(`playing ${message.model}: ${space.repr || space.describe}, ${message.width}x${message.height} at `
              + `${message.fps} FPS`);
  },
  prompt(message) {
    state.prompt = message.prompt;
    $("hud-prompt").textContent = "prompt: " + message.prompt;
    $("hud-prompt").title = message.prompt;
  },
  reset() {
    state.queue = [];
    setStatus("reset: a new start");
  },
  ended(message) {
    setStatus(`stream ended (${message.reason}): ${message.message}; reload the page to play again`, true);
  },
  error(message) {
    state.lastError = message;
    setStatus(`${message.code}: ${message.message}`, true);
  },
};

function onControl(message) {
  const handler = handlers[message.type];
  if (handler) handler(message);
}

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.title = text;
  status.classList.toggle("error", isError);
}

// ------------------------------------------------------------------------------------------- frames

let frameImage = context.createImageData(canvas.width, canvas.height);
let nextFrameAt = 0;

async function onChunk(buffer) {
  const chunk = await parseChunk(buffer);
  send({ op: "ack" });   // room for the next chunk: the server sends only a couple ahead of these acks
  state.queue.push(chunk);
}

// A chunk message -> {index, input, seconds, nfe, count, height, width, encoding, frames}: frames are RGB bytes
// (raw) or decoded images (jpeg).
async function parseChunk(buffer) {
  const view = new DataView(buffer);
  const chunk = {
    index: view.getUint32(0, true), input: view.getUint32(4, true), seconds: view.getFloat32(8, true),
    nfe: view.getUint16(12, true), count: view.getUint16(14, true), height: view.getUint16(16, true),
    width: view.getUint16(18, true), encoding: ENCODINGS[view.getUint8(20)],
  };
  chunk.frames = chunk.encoding === "raw" ? rawFrames(buffer, chunk) : await jpegFrames(buffer, chunk);
  return chunk;
}

function rawFrames(buffer, chunk) {
  const size = chunk.height * chunk.width * 3;
  return Array.from({ length: chunk.count },
                    (_, t) => new Uint8Array(buffer, CHUNK_HEADER_BYTES + t * size, size));
}

async function jpegFrames(buffer, chunk) {
  const view = new DataView(buffer);
  let offset = CHUNK_HEADER_BYTES + 4 * chunk.count;
  const images = [];
  for (let t = 0; t < chunk.count; t++) {
    const size = view.getUint32(CHUNK_HEADER_BYTES + 4 * t, true);
    images.push(createImageBitmap(new Blob([new Uint8Array(buffer, offset, size)], { type: "image/jpeg" })));
    offset += size;
  }
  return Promise.all(images);
}

function drawFrame(frame) {
  if (frame instanceof Uint8Array) {
    const pixels = frameImage.data;
    for (let i = 0, j = 0; i < frame.length; i += 3, j += 4) {
      pixels[j] = frame[i];
      pixels[j + 1] = frame[i + 1];
      pixels[j + 2] = frame[i + 2];
      pixels[j + 3] = 255;
    }
    context.putImageData(frameImage, 0, 0);
  } else {
    context.drawImage(frame, 0, 0);
  }
  if (recording) recording.context.drawImage(canvas, 0, 0, recording.canvas.width, recording.canvas.height);
}

// Each animation frame: draw the next frame when it is due, at the model's frame rate. A chunk is started only if
// it is the newest: with a whole chunk waiting behind the one on screen, the page would show everything a chunk
// late from then on (the server makes chunks exactly as fast as the page shows them), so it skips to the newest.
// A chunk's first frame may also come up to half a frame early, and sets the pace of the frames after it: the
// display locks onto the chunks' arrivals instead of trailing them by a fixed part of a chunk.
function tick(now) {
  if (state.queue.length > 1 && state.queue[0].shown === undefined) state.queue.splice(0, state.queue.length - 1);
  const chunk = state.queue[0];
  const period = state.session ? 1000 / state.session.fps : 0;
  const first = chunk !== undefined && chunk.shown === undefined;
  if (chunk && !state.paused && now >= nextFrameAt - (first ? period / 2 : 0)) {
    chunk.shown = first ? 0 : chunk.shown + 1;
    drawFrame(chunk.frames[chunk.shown]);
    const drawn = performance.now();
    if (chunk.shown === chunk.frames.length - 1) state.queue.shift();
    nextFrameAt = first || now > nextFrameAt + period ? now + period : nextFrameAt + period;   // late: no burst
    state.framesDrawn += 1;
    state.drawTimes.push(drawn);
    while (state.drawTimes[0] < drawn - FPS_WINDOW_MS) state.drawTimes.shift();
    if (first) onChunkShown(chunk, drawn);
  }
  requestAnimationFrame(tick);
}
requestAnimationFrame(tick);

function onChunkShown(chunk, drawn) {
  state.lastChunk = { index: chunk.index, nfe: chunk.nfe, seconds: chunk.seconds, input: chunk.input };
  while (state.pendingKeys.length && state.pendingKeys[0].seq <= chunk.input) {
    state.latencies.push(drawn - state.pendingKeys.shift().time);
  }
  showHud();
}

function showHud() {
  const chunk = state.lastChunk;
  const times = state.drawTimes;
  const fps = times.length > 1 ? ((times.length - 1) * 1000 / (times[times.length - 1] - times[0])).toFixed(1) : "--";
  const latency = state.latencies.length ? `${state.latencies[state.latencies.length - 1].toFixed(0)} ms` : "--";
  $("hud-numbers").textContent = [state.paused ? "paused" : `${fps} FPS`, `chunk #${chunk.index}`, `NFE ${chunk.nfe}`,
                                   `gen ${(chunk.seconds * 1000).toFixed(0)} ms`, `key→frame ${latency}`].join(" · ");
}

function fitCanvas() {
  const width = canvas.width, height = canvas.height;
  const room = Math.min((window.innerWidth - 360) / width, (window.innerHeight - 220) / height);
  const scale = Math.max(1, Math.floor(room));
  canvas.style.width = `${width * scale}px`;
  canvas.style.height = `${height * scale}px`;
  $("stage").style.width = `${Math.max(width * scale, MIN_STAGE_WIDTH)}px`;   // the HUD's text never resizes it
}
window.addEventListener("resize", fitCanvas);

// ------------------------------------------------------------------------------------------- input

function sendInput() {
  state.seq += 1;
  send({ op: "input", seq: state.seq, keys: state.held, pointer: state.pointer });
}

const pageKeys = {
  Enter: () => $("prompt").focus(),
  KeyP: togglePause,
  KeyR: () => send({ op: "reset" }),
  KeyV: toggleRecording,
  KeyH: toggleHelp,
};

window.addEventListener("keydown", (event) => {
  if (event.target === $("prompt") || event.ctrlKey || event.metaKey || event.altKey) return;
  if (state.keys.has(event.code)) {
    event.preventDefault();
    if (!state.held.includes(event.code)) {
      state.held.push(event.code);
      sendInput();
      state.pendingKeys.push({ seq: state.seq, time: performance.now() });
    }
  } else if (pageKeys[event.code] && !event.repeat) {
    event.preventDefault();
    pageKeys[event.code]();
  }
});

window.addEventListener("keyup", (event) => {
  const at = state.held.indexOf(event.code);
  if (at >= 0) {
    state.held.splice(at, 1);
    sendInput();
  }
});

window.addEventListener("blur", () => {   // keys released while the page had no focus never send keyup
  if (state.held.length || state.pointer) {
    state.held = [];
    state.pointer = null;
    sendInput();
  }
});

// The pointer drives a Box action's first two values while the left button is held on the canvas.
let pointerSendPending = false;
function pointerAt(event) {
  const box = canvas.getBoundingClientRect();
  const clamp = (v) => Math.max(-1, Math.min(1, v));
  return [clamp(2 * (event.clientX - box.left) / box.width - 1), clamp(1 - 2 * (event.clientY - box.top) / box.height)];
}
function sendPointerSoon() {   // at most one input per animation frame while the pointer moves
  if (pointerSendPending) return;
  pointerSendPending = true;
  requestAnimationFrame(() => { pointerSendPending = false; sendInput(); });
}
canvas.addEventListener("pointerdown", (event) => {
  if (event.button !== 0 || state.session?.action_space.kind !== "continuous") return;
  canvas.setPointerCapture(event.pointerId);
  state.pointer = pointerAt(event);
  sendPointerSoon();
});
canvas.addEventListener("pointermove", (event) => {
  if (state.pointer === null) return;
  state.pointer = pointerAt(event);
  sendPointerSoon();
});
for (const type of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(type, () => {
    if (state.pointer === null) return;
    state.pointer = null;
    sendPointerSoon();
  });
}

// ------------------------------------------------------------------------------------------- controls

$("prompt-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const prompt = $("prompt").value.trim();
  if (prompt) {
    send({ op: "prompt", prompt });
    setStatus("new prompt from the next chunk");
  }
  $("prompt").value = "";
  $("prompt").blur();
  canvas.focus();
});
$("prompt").addEventListener("keydown", (event) => {
  if (event.code === "Escape") { $("prompt").value = ""; $("prompt").blur(); }
});

function togglePause() {
  state.paused = !state.paused;
  state.drawTimes = [];
  $("pause").classList.toggle("on", state.paused);
  send({ op: "pause", on: state.paused });
  if (state.lastChunk) showHud();
}

function toggleHelp() {
  $("help").hidden = !$("help").hidden;
}

$("pause").addEventListener("click", togglePause);
$("reset").addEventListener("click", () => send({ op: "reset" }));
$("record").addEventListener("click", toggleRecording);
$("help-toggle").addEventListener("click", toggleHelp);
$("model").addEventListener("change", () => send({ op: "open", ...openOptions(), model: $("model").value }));
for (const button of document.querySelectorAll("button")) {
  button.addEventListener("mouseup", () => canvas.focus());   // keys go to the game again, not the button
}

// Recording: the frames drawn while it runs, scaled by a whole number into a second canvas (crisp, as on
// screen), through MediaRecorder into a WebM that downloads when it stops.
let recording = null;

function toggleRecording() {
  if (recording) {
    recording.recorder.stop();
    return;
  }
  const scale = Math.max(1, Math.floor(RECORD_SIDE / Math.max(canvas.width, canvas.height)));
  const target = document.createElement("canvas");
  target.width = canvas.width * scale;
  target.height = canvas.height * scale;
  const targetContext = target.getContext("2d", { alpha: false });
  targetContext.imageSmoothingEnabled = false;
  targetContext.drawImage(canvas, 0, 0, target.width, target.height);
  const type = ["video/webm;codecs=vp9", "video/webm;codecs=vp8", "video/webm"].find(MediaRecorder.isTypeSupported);
  const recorder = new MediaRecorder(target.captureStream(state.session ? state.session.fps : 15), { mimeType: type });
  const parts = [];
  recorder.addEventListener("dataavailable", (event) => parts.push(event.data));
  recorder.addEventListener("stop", () => {
    const video = new Blob(parts, { type: "video/webm" });
    state.lastRecording = { size: video.size, type: video.type };
    const link = document.createElement("a");
    link.href = URL.createObjectURL(video);
    link.download = `streamvideo-${state.session ? state.session.model : "page"}-`
                    + `${new Date().toISOString().replace(/[:.]/g, "-")}.webm`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    recording = null;
    $("record").classList.remove("on");
    setStatus(`recorded ${(video.size / 1024).toFixed(0)} KiB of WebM`);
  });
  recorder.start();
  recording = { recorder, canvas: target, context: targetContext };
  $("record").classList.add("on");
  setStatus("recording: V or the button again stops it and downloads the WebM");
}
