package replay

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"
	"unicode/utf8"
)

// Line is one line of an export file: everything needed to send the message again exactly.
// Body holds a UTF-8 body; BodyBase64 one that is not (Pub/Sub data may be any bytes).
type Line struct {
	MessageID    string              `json:"message_id"`
	Body         *string             `json:"body,omitempty"`
	BodyBase64   []byte              `json:"body_base64,omitempty"`
	Attributes   map[string]LineAttr `json:"attributes,omitempty"`
	ReceiveCount int                 `json:"receive_count,omitempty"`
	SentAt       time.Time           `json:"sent_timestamp,omitzero"`
	OrderingKey  string              `json:"ordering_key,omitempty"`
}

// LineAttr is an attribute in an export file.
type LineAttr struct {
	DataType    string  `json:"data_type"`
	StringValue *string `json:"string_value,omitempty"`
	BinaryValue []byte  `json:"binary_value,omitempty"`
}

// ToLine returns m as a line of an export file.
func ToLine(m *Message) Line {
	r := Line{MessageID: m.ID, ReceiveCount: m.ReceiveCount, SentAt: m.SentAt.UTC(), OrderingKey: m.OrderingKey}
	if utf8.Valid(m.Body) {
		s := string(m.Body)
		r.Body = &s
	} else {
		r.BodyBase64 = m.Body
	}
	if len(m.Attributes) > 0 {
		r.Attributes = make(map[string]LineAttr, len(m.Attributes))
		for k, a := range m.Attributes {
			ra := LineAttr{DataType: a.DataType, BinaryValue: a.Binary}
			if a.Binary == nil {
				s := a.String
				ra.StringValue = &s
			}
			r.Attributes[k] = ra
		}
	}
	return r
}

// Message returns the message r describes (without a Handle).
func (r *Line) Message() (*Message, error) {
	if r.Body == nil && r.BodyBase64 == nil {
		return nil, errors.New("record without body")
	}
	m := &Message{ID: r.MessageID, ReceiveCount: r.ReceiveCount, SentAt: r.SentAt, OrderingKey: r.OrderingKey}
	if r.Body != nil {
		m.Body = []byte(*r.Body)
	} else {
		m.Body = r.BodyBase64
	}
	if len(r.Attributes) > 0 {
		m.Attributes = make(map[string]Attr, len(r.Attributes))
		for k, a := range r.Attributes {
			if a.DataType == "" {
				return nil, fmt.Errorf("attribute %q without data_type", k)
			}
			v := Attr{DataType: a.DataType, Binary: a.BinaryValue}
			if a.StringValue != nil {
				v.String = *a.StringValue
			}
			m.Attributes[k] = v
		}
	}
	return m, nil
}

// MaxLine bounds one line of an export file (a 1 MiB SQS body, base64 attributes, slack).
const MaxLine = 4 << 20

// WriteLine writes m as one JSONL line.
func WriteLine(w io.Writer, m *Message) error {
	b, err := json.Marshal(ToLine(m))
	if err != nil {
		return fmt.Errorf("encode message %s: %w", m.ID, err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ReadLines calls fn with each message of a JSONL export, in file order; blank lines are
// skipped. It stops at the first unreadable line, naming it.
func ReadLines(r io.Reader, fn func(*Message) error) error {
	for m, err := range Lines(r) {
		if err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// Lines yields each message of a JSONL export as it reads it, in file order, holding one
// line at a time; blank lines are skipped. At the first unreadable line it yields an error
// naming the line, and stops.
func Lines(r io.Reader) iter.Seq2[*Message, error] {
	return func(yield func(*Message, error) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), MaxLine)
		line := 0
		for sc.Scan() {
			line++
			b := sc.Bytes()
			if len(b) == 0 {
				continue
			}
			m, err := ParseLine(b)
			if err != nil {
				yield(nil, fmt.Errorf("line %d: %w", line, err))
				return
			}
			if !yield(m, nil) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			yield(nil, fmt.Errorf("line %d: %w", line+1, err))
		}
	}
}

// ParseLine reads one line of an export file.
func ParseLine(line []byte) (*Message, error) {
	var r Line
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, fmt.Errorf("parse record: %w", err)
	}
	return r.Message()
}
