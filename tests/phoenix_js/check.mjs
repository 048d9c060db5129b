// Checks zerocam's Phoenix V2 frames against the official phoenix.js client's
// Serializer, byte for byte. Usage: node check.mjs VECTORS.json
// The vectors come from tests/phoenix_js.rs (zerocam's own encoder/decoder).
// Exit 0 when every vector agrees; 1 with a list of disagreements otherwise.
import { readFileSync } from "node:fs"
import { Serializer } from "phoenix"

const hex = (buf) => Buffer.from(new Uint8Array(buf)).toString("hex")
const unhex = (s) => Uint8Array.from(Buffer.from(s, "hex")).buffer // a real ArrayBuffer

const vectors = JSON.parse(readFileSync(process.argv[2], "utf8"))
const failures = []
const counts = {}
const fail = (v, what) => failures.push(`${v.name}: ${what}`)

for (const v of vectors) {
  counts[v.kind] = (counts[v.kind] || 0) + 1
  switch (v.kind) {
    case "encode_text": {
      // A client text frame: Serializer.encode of the same message.
      const js = Serializer.encode(v.msg, (x) => x)
      if (js !== v.zerocam) fail(v, `js ${JSON.stringify(js)} != zerocam ${JSON.stringify(v.zerocam)}`)
      break
    }
    case "encode_push": {
      // A client binary push: Serializer.encode with an ArrayBuffer payload.
      const msg = { ...v.msg, payload: unhex(v.payload_hex) }
      const js = hex(Serializer.encode(msg, (x) => x))
      if (js !== v.zerocam_hex) fail(v, `js ${js} != zerocam ${v.zerocam_hex}`)
      break
    }
    case "encode_push_error": {
      // Fields over 255 bytes: phoenix.js throws, zerocam returns an error.
      const msg = { ...v.msg, payload: unhex(v.payload_hex) }
      let threw = null
      try { Serializer.encode(msg, (x) => x) } catch (e) { threw = e.message }
      if (!threw) fail(v, "phoenix.js did not refuse it")
      else if (!threw.includes(v.field)) fail(v, `js refused for another field: ${threw}`)
      break
    }
    case "decode_binary": {
      // A server binary frame (kinds 0, 1, 2): Serializer.decode vs zerocam's decoder.
      const m = Serializer.decode(unhex(v.frame_hex), (x) => x)
      const z = v.zerocam
      const got = {
        join_ref: m.join_ref, ref: m.ref, topic: m.topic, event: m.event,
        status: m.payload instanceof ArrayBuffer ? null : m.payload.status,
        payload_hex: hex(m.payload instanceof ArrayBuffer ? m.payload : m.payload.response),
      }
      for (const k of Object.keys(got)) {
        if (got[k] !== z[k]) fail(v, `${k}: js ${JSON.stringify(got[k])} != zerocam ${JSON.stringify(z[k])}`)
      }
      break
    }
    case "decode_text": {
      const m = Serializer.decode(v.frame, (x) => x)
      const z = v.zerocam
      for (const k of ["join_ref", "ref", "topic", "event"]) {
        if (m[k] !== z[k]) fail(v, `${k}: js ${JSON.stringify(m[k])} != zerocam ${JSON.stringify(z[k])}`)
      }
      if (JSON.stringify(m.payload) !== JSON.stringify(z.payload)) fail(v, "payload differs")
      break
    }
    default:
      fail(v, `unknown vector kind ${v.kind}`)
  }
}

const n = vectors.length
if (failures.length) {
  console.error(`phoenix.js disagrees on ${failures.length} of ${n} vectors:`)
  for (const f of failures) console.error("  " + f)
  process.exit(1)
}
console.log(`phoenix.js agrees with zerocam on all ${n} vectors ${JSON.stringify(counts)}`)
