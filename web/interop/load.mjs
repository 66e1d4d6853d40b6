// loadWSPush runs ../wspush.js, the browser client, in a fresh V8 context with
// the given globals (e.g. a fake WebSocket and fake timers) and returns the
// WSPush class it defines. This is the file as a browser gets it, run as a
// classic script.
import { readFileSync } from "node:fs";
import vm from "node:vm";

const source = readFileSync(new URL("../wspush.js", import.meta.url), "utf8");

export function loadWSPush(globals = {}) {
  const context = vm.createContext({
    EventTarget, Event, CustomEvent, URL, setTimeout, clearTimeout, console, ...globals,
  });
  vm.runInContext(source, context, { filename: "wspush.js" });
  return context.WSPush;
}
