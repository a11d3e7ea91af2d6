package journal

import (
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendLineage appends the JSON of l's storedLineage to b, byte for byte
// what json.Marshal writes (field order, omitempty and omitzero, sorted map
// keys). It reports false for what it leaves to marshalLineage: a string
// json.Marshal would escape, and a time it would refuse (a year outside
// 0…9999), so that error stays encoding/json's own.
func appendLineage(b []byte, l Lineage) ([]byte, bool) {
	b = append(b, `{"renewals":[`...)
	for i, r := range l.Renewals {
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendRenewal(b, r); !ok {
			return nil, false
		}
	}
	return append(b, "]}"...), true
}

func appendRenewal(b []byte, r Renewal) ([]byte, bool) {
	ok := true
	str := func(name, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":`...)
		b, ok = appendPlainString(b, v, ok)
	}
	num := func(name string, v int) {
		if v == 0 {
			return
		}
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, int64(v), 10)
	}
	stamp := func(name string, t time.Time) {
		if t.IsZero() {
			return
		}
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":`...)
		b, ok = appendTime(b, t, ok)
	}
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	str("kind", string(r.Kind), false)
	str("state", string(r.State), false)
	num("old_certificate_id", r.OldCertificateID)
	str("subject", r.Subject, true)
	stamp("started_at", r.StartedAt)
	num("new_certificate_id", r.NewCertificateID)
	num("request_id", r.RequestID)
	stamp("renewed_at", r.RenewedAt)
	str("message", r.Message, true)
	if r.Orphaned {
		b = append(b, `,"orphaned":true`...)
	}
	if len(r.Stores) > 0 {
		b = append(b, `,"stores":{`...)
		ids := make([]string, 0, len(r.Stores))
		for id := range r.Stores {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for i, id := range ids {
			if i > 0 {
				b = append(b, ',')
			}
			st := r.Stores[id]
			b, ok = appendPlainString(b, id, ok)
			b = append(b, `:{"status":`...)
			b, ok = appendPlainString(b, st.Status, ok)
			if !st.At.IsZero() {
				b = append(b, `,"at":`...)
				b, ok = appendTime(b, st.At, ok)
			}
			if st.Detail != "" {
				b = append(b, `,"detail":`...)
				b, ok = appendPlainString(b, st.Detail, ok)
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, '}'), ok
}

// appendPlainString appends s quoted when json.Marshal would write it
// unescaped: printable ASCII other than `"`, `\` and the HTML characters
// it escapes. Anything else is reported (ok false) for encoding/json.
func appendPlainString(b []byte, s string, ok bool) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return b, false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), ok
}

// appendTime appends t in UTC as time.Time's MarshalJSON writes it.
func appendTime(b []byte, t time.Time, ok bool) ([]byte, bool) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), ok
}
