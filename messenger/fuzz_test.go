package messenger

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParseEnvelope: any bytes either fail cleanly or yield events whose
// raw bytes are valid JSON, exactly what encoding/json decodes from them;
// nothing panics.
func FuzzParseEnvelope(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "fixtures", "*.json"))
	for _, fn := range files {
		if b, err := os.ReadFile(fn); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"object":"page","entry":[{"id":1,"messaging":[{"app_roles":{"1":["x"]}}]}]}`))
	// Where encoding/json and v2 differ unless told to agree: duplicate
	// and differently cased names, invalid UTF-8, null and numeric ids.
	f.Add([]byte(`{"object":"page","Object":"x","entry":[{"id":"1","ID":"2","messaging":[{"message":{"mid":"a"},"Message":{"text":"b"},"sender":null,"recipient":{"id":12}}]}]}`))
	f.Add([]byte("{\"object\":\"page\",\"entry\":[{\"id\":\"1\",\"standby\":[{\"message\":{\"text\":\"\xff\xfe\",\"mid\":\"m\"},\"timestamp\":1}]}]}"))
	f.Add([]byte(`{"object":"page","entry":[{"id":"1","messaging":[null,{"pass_thread_control":{"new_owner_app_id":null,"previous_owner_app_id":263902037430900}}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := ParseEnvelope(body)
		var old Envelope
		oldErr := json.Unmarshal(body, &old)
		if err != nil {
			return
		}
		// ParseEnvelope's single-pass decoder must agree with encoding/json
		// on whatever it accepts.
		if oldErr != nil {
			t.Fatalf("accepted a body encoding/json refuses (%v): %q", oldErr, body)
		}
		if !reflect.DeepEqual(*env, old) {
			t.Fatalf("decoded differently from encoding/json:\n%#v\n%#v", *env, old)
		}
		env.Each(func(en *Entry, ch Channel, ev *Event) {
			if en.ID == "" {
				t.Fatal("entry without id accepted")
			}
			_ = ev.Kind()
			_ = ev.UserID()
			if !json.Valid(ev.Raw) {
				t.Fatalf("raw event is not JSON: %q", ev.Raw)
			}
		})
	})
}

// FuzzVerify: only the exact signature of the exact body passes.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"object":"page"}`), []byte("secret"), "sha256=00")
	f.Add([]byte(""), []byte(""), "")
	f.Add([]byte("x"), []byte("k"), "sha256=ZZ")
	f.Fuzz(func(t *testing.T, body, secret []byte, header string) {
		h := http.Header{}
		h.Set(HeaderSignature256, header)
		err := Verify(h, body, secret, VerifyOptions{})
		if err == nil && header != "" && Verify(hdr(HeaderSignature256, Sign(secret, body)), body, secret, VerifyOptions{}) != nil {
			t.Fatal("own signature rejected")
		}
		if err == nil {
			// Whatever passed must decode to the body's true MAC.
			good := Sign(secret, body)
			if len(header) != len(good) {
				t.Fatalf("header %q passed but differs in length from %q", header, good)
			}
		}
		if Verify(hdr(HeaderSignature256, Sign(secret, body)), body, secret, VerifyOptions{}) != nil {
			t.Fatal("valid signature rejected")
		}
	})
}
