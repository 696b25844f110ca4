// A partner system of one institution, in JavaScript, doing what contract §8 allows and one thing it
// does not. Input: the JSON of `iioe credentials partner <inst> --json` on stdin. Output: one JSON line.
import { connect, headers } from "nats";
import { randomUUID } from "node:crypto";

const creds = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
}));
const inst = creds.institution;
const errors = [];
const nc = await connect({
  servers: creds.nats_url,
  user: creds.user,
  pass: creds.password,
  inboxPrefix: creds.inbox_prefix,
  maxReconnectAttempts: 0,
});
(async () => { for await (const s of nc.status()) if (s.type === "error") errors.push(String(s.data)); })();

const body = { full_name: "Javascript Partner", email: `js-${randomUUID().slice(0, 8)}@${inst}.edu.mn`, language: "en" };
const reply = JSON.parse(new TextDecoder().decode(
  (await nc.request(`iioe.commands.${inst}.register_educator`, JSON.stringify(body), { timeout: 10000 })).data,
));

const js = nc.jetstream();
const acks = [];
for (const course of ["genai-fundamentals", "teaching-with-ai", "future-classroom"]) {
  const now = new Date().toISOString();
  const event = {
    specversion: "1.0", id: `js-${randomUUID()}`, source: `urn:iioe:partner:${inst}-lms`,
    type: "org.iioe.learning.course_completed.v1", time: now, subject: reply.educator_id,
    datacontenttype: "application/json",
    data: { educator_id: reply.educator_id, institution: inst, course_id: course, score: 88, completed_at: now },
  };
  const h = headers();
  h.set("Content-Type", "application/cloudevents+json");
  const ack = await js.publish(`iioe.events.${inst}.course_completed.v1`, JSON.stringify(event), { msgID: event.id, headers: h });
  acks.push({ stream: ack.stream, duplicate: ack.duplicate });
}

let forbidden = "accepted";
try {
  await js.publish("iioe.events.other-inst.course_completed.v1", "{}", { timeout: 1500 });
} catch (err) {
  forbidden = String(err.code ?? err.message);
}
await nc.flush();
await new Promise((r) => setTimeout(r, 200));
console.log(JSON.stringify({ reply, acks, forbidden, errors }));
await nc.close();
