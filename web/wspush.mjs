// ES module entry of the wspush browser client: import { WSPush } from "/wspush.mjs".
// The client itself is /wspush.js (a classic script that sets globalThis.WSPush);
// a classic script cannot contain export statements, hence this wrapper.
import "./wspush.js";

export const WSPush = globalThis.WSPush;
export default WSPush;
