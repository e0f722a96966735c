package inbox

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The inbox's own small database: what Baton does not keep for it. One
// process owns the file (bbolt's lock), every bucket is created at open,
// and values are JSON.
var (
	bConvs    = []byte("conversations") // page/psid -> Conversation
	bMessages = []byte("messages")      // page/psid \x00 seq (big-endian) -> Message
	bReads    = []byte("reads")         // agent \x00 page/psid -> last seq read (big-endian)
	bPersonas = []byte("personas")      // agent \x00 page -> persona id
	bSeen     = []byte("seen")          // delivery id or mid -> when (unix seconds), against redeliveries
	bMeta     = []byte("meta")          // "session_key"
)

// maxMessages bounds what one conversation keeps; the oldest go first.
const maxMessages = 5000

// seenFor is how long delivery ids and mids are remembered: longer than
// Baton retries a delivery.
const seenFor = 72 * time.Hour

// db is the inbox's bbolt file.
type db struct{ b *bolt.DB }

func openDB(path string) (*db, error) {
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open inbox data %s: %w (is another inbox running on it?)", path, err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bConvs, bMessages, bReads, bPersonas, bSeen, bMeta, bSessions} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if tx.Bucket(bMeta).Get([]byte("session_key")) == nil {
			key := make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return err
			}
			return tx.Bucket(bMeta).Put([]byte("session_key"), key)
		}
		return nil
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("prepare inbox data %s: %w", path, err)
	}
	return &db{b: b}, nil
}

func (d *db) Close() error { return d.b.Close() }

// sessionKey signs the agents' session cookies: kept in the file so a
// restart does not sign everyone out.
func (d *db) sessionKey() ([]byte, error) {
	var key []byte
	err := d.b.View(func(tx *bolt.Tx) error {
		key = append([]byte(nil), tx.Bucket(bMeta).Get([]byte("session_key"))...)
		return nil
	})
	return key, err
}

func convKey(page, psid string) []byte { return []byte(page + "/" + psid) }

func msgKey(ck []byte, seq uint64) []byte {
	k := make([]byte, len(ck)+9)
	copy(k, ck)
	binary.BigEndian.PutUint64(k[len(ck)+1:], seq)
	return k
}

func getConv(tx *bolt.Tx, page, psid string) (*Conversation, error) {
	raw := tx.Bucket(bConvs).Get(convKey(page, psid))
	if raw == nil {
		return nil, nil
	}
	var c Conversation
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("conversation %s/%s: %w", page, psid, err)
	}
	return &c, nil
}

func putConv(tx *bolt.Tx, c *Conversation) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return tx.Bucket(bConvs).Put(convKey(c.PageID, c.PSID), raw)
}

// addMessage appends m to c (the caller saves c) unless its mid is known.
func addMessage(tx *bolt.Tx, c *Conversation, m Message) (bool, error) {
	if m.Mid != "" && !markSeen(tx, "m:"+m.Mid) {
		return false, nil
	}
	if err := putMessage(tx, c, m); err != nil {
		return false, err
	}
	if m.From != FromNote && m.From != FromEvent {
		c.Last = m.Text
		if c.Last == "" && len(m.Attachments) > 0 {
			c.Last = "[" + m.Attachments[0].Type + "]"
		}
		c.LastFrom = m.From
	}
	return true, nil
}

// putMessage stores m as c's next message, dropping the oldest past
// maxMessages.
func putMessage(tx *bolt.Tx, c *Conversation, m Message) error {
	c.LastSeq++
	m.Seq = c.LastSeq
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ck := convKey(c.PageID, c.PSID)
	if err := tx.Bucket(bMessages).Put(msgKey(ck, m.Seq), raw); err != nil {
		return err
	}
	if m.Seq > maxMessages {
		_ = tx.Bucket(bMessages).Delete(msgKey(ck, m.Seq-maxMessages))
	}
	return nil
}

// messages reads c's messages after seq (0: all), oldest first.
func messages(tx *bolt.Tx, page, psid string, after uint64) ([]Message, error) {
	ck := convKey(page, psid)
	out := []Message{}
	cur := tx.Bucket(bMessages).Cursor()
	for k, v := cur.Seek(msgKey(ck, after+1)); inConv(k, ck); k, v = cur.Next() {
		var m Message
		if err := json.Unmarshal(v, &m); err != nil {
			continue // one bad record does not hide the conversation
		}
		out = append(out, m)
	}
	return out, nil
}

// inConv reports whether a messages key is one of conversation ck's.
func inConv(k, ck []byte) bool {
	return len(k) == len(ck)+9 && string(k[:len(ck)]) == string(ck) && k[len(ck)] == 0
}

// markSeen records id and reports whether it is new.
func markSeen(tx *bolt.Tx, id string) bool {
	b := tx.Bucket(bSeen)
	if b.Get([]byte(id)) != nil {
		return false
	}
	v := make([]byte, 8)
	binary.BigEndian.PutUint64(v, uint64(time.Now().Unix()))
	_ = b.Put([]byte(id), v)
	return true
}

// forgetSeen drops marks older than seenFor.
func (d *db) forgetSeen(now time.Time) error {
	return d.b.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bSeen)
		var old [][]byte
		_ = b.ForEach(func(k, v []byte) error {
			if len(v) == 8 && time.Unix(int64(binary.BigEndian.Uint64(v)), 0).Before(now.Add(-seenFor)) {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

func readKey(agent, page, psid string) []byte { return []byte(agent + "\x00" + page + "/" + psid) }

func readSeq(tx *bolt.Tx, agent, page, psid string) uint64 {
	v := tx.Bucket(bReads).Get(readKey(agent, page, psid))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putRead(tx *bolt.Tx, agent, page, psid string, seq uint64) error {
	v := make([]byte, 8)
	binary.BigEndian.PutUint64(v, seq)
	return tx.Bucket(bReads).Put(readKey(agent, page, psid), v)
}

// unread counts the person's messages after what agent read.
func unread(tx *bolt.Tx, agent string, c *Conversation) int {
	seen := readSeq(tx, agent, c.PageID, c.PSID)
	if seen >= c.LastSeq {
		return 0
	}
	n := 0
	ck := convKey(c.PageID, c.PSID)
	cur := tx.Bucket(bMessages).Cursor()
	for k, v := cur.Seek(msgKey(ck, seen+1)); inConv(k, ck); k, v = cur.Next() {
		var m struct {
			From string `json:"from"`
		}
		if json.Unmarshal(v, &m) == nil && m.From == FromPerson {
			n++
		}
	}
	return n
}

func personaKey(agent, page string) []byte { return []byte(agent + "\x00" + page) }

func (d *db) persona(agent, page string) (string, error) {
	var id string
	err := d.b.View(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(bPersonas).Get(personaKey(agent, page)))
		return nil
	})
	return id, err
}

func (d *db) putPersona(agent, page, id string) error {
	return d.b.Update(func(tx *bolt.Tx) error { return tx.Bucket(bPersonas).Put(personaKey(agent, page), []byte(id)) })
}

// errNoConversation is a conversation the inbox does not have.
var errNoConversation = errors.New("no such conversation in the inbox")

// erasePerson deletes everything the file keeps of the person of
// page/psid, because Baton erased them (a baton.erasure delivery): the
// conversation with its claim, name and picture, its messages and notes,
// and every agent's unread mark. It reports whether there was anything.
// The seen marks stay: they hold delivery ids and Meta's message ids,
// and expire within seenFor.
func (d *db) erasePerson(page, psid string) (bool, error) {
	found := false
	err := d.b.Update(func(tx *bolt.Tx) error {
		ck := convKey(page, psid)
		found = tx.Bucket(bConvs).Get(ck) != nil
		if err := tx.Bucket(bConvs).Delete(ck); err != nil {
			return err
		}
		// The keys go after the walks: a cursor may skip a key deleted
		// under it.
		var msgs, reads [][]byte
		cur := tx.Bucket(bMessages).Cursor()
		for k, _ := cur.Seek(msgKey(ck, 0)); inConv(k, ck); k, _ = cur.Next() {
			msgs = append(msgs, append([]byte(nil), k...))
		}
		suffix := "\x00" + string(ck) // readKey's: agent \x00 page/psid
		_ = tx.Bucket(bReads).ForEach(func(k, _ []byte) error {
			if strings.HasSuffix(string(k), suffix) {
				reads = append(reads, append([]byte(nil), k...))
			}
			return nil
		})
		found = found || len(msgs)+len(reads) > 0
		for _, del := range []struct {
			b    []byte
			keys [][]byte
		}{{bMessages, msgs}, {bReads, reads}} {
			for _, k := range del.keys {
				if err := tx.Bucket(del.b).Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return found, err
}
