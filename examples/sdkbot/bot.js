// A Messenger bot written against Meta's platform with a widely used SDK
// (messaging-api-messenger). Nothing in it knows Baton: it checks Meta's
// X-Hub-Signature-256, reads Meta's webhook shape, and calls the Graph API
// through the SDK, whose origin is set to Baton's /graph endpoint.
//
// At start it sets its Messenger Profile (Get Started button, greeting),
// replaces its persona from an earlier run and uploads a welcome image;
// a person's first message is answered by first name (User Profile API),
// as the persona, with the uploaded image.
//
// Environment: PORT, GRAPH_ORIGIN (e.g. http://127.0.0.1:8080/graph),
// ACCESS_TOKEN (the app's token), APP_SECRET (signs the webhooks).
'use strict';
const crypto = require('crypto');
const http = require('http');
const { MessengerClient } = require('messaging-api-messenger');

const client = new MessengerClient({
  accessToken: process.env.ACCESS_TOKEN,
  origin: process.env.GRAPH_ORIGIN,
  skipAppSecretProof: true,
});
const secret = process.env.APP_SECRET;
const log = []; // what the bot did, for people and tests: GET /log

function verified(req, body) {
  const sig = req.headers['x-hub-signature-256'] || '';
  const want = 'sha256=' + crypto.createHmac('sha256', secret).update(body).digest('hex');
  return sig.length === want.length && crypto.timingSafeEqual(Buffer.from(sig), Buffer.from(want));
}

function metaError(err) {
  const e = (err.response && err.response.data && err.response.data.error) || {};
  // The SDK camel-cases response keys: error_subcode arrives as errorSubcode.
  return { code: e.code, subcode: e.error_subcode ?? e.errorSubcode, message: e.message || String(err) };
}

const PERSONA = 'Sam from support';
// A 1x1 PNG, uploaded as a file (multipart) the way SDKs send one.
const WELCOME_PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=', 'base64');
let persona = null; // {id}
let welcome = null; // {attachmentId}
const greeted = new Set();

async function setUp() {
  await client.setGetStarted('GET_STARTED');
  await client.setGreeting('Hi {{user_first_name}}! Ask me anything.');
  const profile = await client.getMessengerProfile(['get_started', 'greeting']);
  for (const p of await client.getAllPersonas()) {
    if (p.name === PERSONA) await client.deletePersona(p.id); // left by an earlier run
  }
  persona = await client.createPersona({ name: PERSONA, profilePictureUrl: 'https://example.com/sam.png' });
  const mine = await client.getPersona(persona.id);
  welcome = await client.uploadAttachment('image', WELCOME_PNG, { isReusable: true, filename: 'welcome.png' });
  log.push({ did: 'set-up', getStarted: profile[0] && profile[0].getStarted && profile[0].getStarted.payload, persona: mine.name, attachmentId: welcome.attachmentId });
}

async function greet(psid) {
  const user = await client.getUserProfile(psid, { fields: ['first_name', 'last_name', 'profile_pic'] });
  await client.sendText(psid, 'Hello ' + user.firstName + '!', { messagingType: 'RESPONSE', personaId: persona.id });
  await client.sendImage(psid, { attachmentId: welcome.attachmentId }, { messagingType: 'RESPONSE', personaId: persona.id });
  log.push({ did: 'greeted', firstName: user.firstName });
}

async function handle(event, channel) {
  const psid = event.sender && event.sender.id;
  const message = event.message;
  if (!psid || !message || message.is_echo || !message.text) return;
  const text = message.text.toLowerCase();
  if (channel === 'messaging' && !greeted.has(psid)) {
    greeted.add(psid);
    await greet(psid);
  }
  if (channel === 'standby') {
    // Someone else (the inbox) owns the thread: try to answer anyway, be
    // refused as Meta would refuse, then take the thread back.
    try {
      await client.sendText(psid, 'Are you still there?');
      log.push({ did: 'sent-while-not-owner' });
    } catch (err) {
      log.push({ did: 'refused', ...metaError(err) });
      await client.takeThreadControl(psid, 'bot takes back');
      await client.sendText(psid, "I'm back.");
      log.push({ did: 'took' });
    }
    return;
  }
  if (text.includes('human')) {
    await client.sendText(psid, 'Connecting you to a person.');
    await client.passThreadControlToPageInbox(psid, 'asked for a human');
    log.push({ did: 'passed' });
    return;
  }
  await client.sendText(psid, 'You said: ' + message.text);
  log.push({ did: 'replied', text: message.text });
}

http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/log') {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(log));
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const body = Buffer.concat(chunks);
    if (!verified(req, body)) {
      res.statusCode = 401;
      res.end('bad signature');
      return;
    }
    res.end('EVENT_RECEIVED');
    const payload = JSON.parse(body.toString('utf8'));
    for (const entry of payload.entry || []) {
      for (const event of entry.messaging || []) await handle(event, 'messaging').catch((err) => log.push({ did: 'error', ...metaError(err) }));
      for (const event of entry.standby || []) await handle(event, 'standby').catch((err) => log.push({ did: 'error', ...metaError(err) }));
    }
  });
}).listen(Number(process.env.PORT), '127.0.0.1', () => {
  console.log('sdkbot listening on ' + process.env.PORT);
  setUp().catch((err) => log.push({ did: 'error', during: 'set-up', ...metaError(err) }));
});
