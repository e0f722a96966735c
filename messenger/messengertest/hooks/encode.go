package hooks

import (
	"bytes"
	"encoding/json"

	"github.com/batonhq/baton/messenger"
)

// EncodeEvent encodes one event as Meta would put it in an entry;
// aiGenerated adds Meta AI's "ai_generated":true to an echo's message.
func EncodeEvent(ev *messenger.Event, aiGenerated bool) json.RawMessage {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(ev) // plain structs: cannot fail
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if m := ev.Message; m != nil && m.IsEcho && m.AppID != "" {
		// Every Meta example sends an echo's app_id as a bare number; bots
		// with strict types depend on it. Strings inside the event are
		// escaped, so this exact key only occurs as the field itself.
		b = bytes.Replace(b, []byte(`"app_id":"`+m.AppID+`"`), []byte(`"app_id":`+m.AppID), 1)
	}
	if m := ev.Message; m != nil && m.IsEcho && aiGenerated {
		// messenger.Message has no field for it; the key is spliced in
		// after is_echo, which for the same reason occurs only as a key.
		b = bytes.Replace(b, []byte(`"is_echo":true`), []byte(`"is_echo":true,"ai_generated":true`), 1)
	}
	return b
}
