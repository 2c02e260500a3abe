package s3event

import (
	"testing"

	"imgpipe/pkg/failure"
)

func TestEncodeKey(t *testing.T) {
	tests := []struct{ key, want string }{
		{"red flower.jpg", "red+flower.jpg"},
		{"upload/a/b/c.png", "upload/a/b/c.png"},
		{"c++/a+b.png", "c%2B%2B/a%2Bb.png"},
		{"100%.jpg", "100%25.jpg"},
		{"a&b=c?d#e.jpg", "a%26b%3Dc%3Fd%23e.jpg"},
		{"IMG (1).jpeg", "IMG+%281%29.jpeg"},
		{"фото/日本 語.jpg", "%D1%84%D0%BE%D1%82%D0%BE/%E6%97%A5%E6%9C%AC+%E8%AA%9E.jpg"},
		{"emoji-📷.png", "emoji-%F0%9F%93%B7.png"},
		{"keep-_.*/", "keep-_.*/"},
		{"tilde~", "tilde%7E"},
		{"colon:semi;comma,", "colon%3Asemi%3Bcomma%2C"},
		{"tab\tnl\n", "tab%09nl%0A"},
		{"%2B", "%252B"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := EncodeKey(tt.key); got != tt.want {
			t.Errorf("EncodeKey(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestDecodeKey(t *testing.T) {
	tests := []struct {
		raw, want string
		ok        bool
	}{
		{"red+flower.jpg", "red flower.jpg", true},
		{"red%20flower.jpg", "red flower.jpg", true},
		{"c%2B%2B", "c++", true},
		{"a%2fb", "a/b", true},
		{"tilde~star*", "tilde~star*", true},
		{"%e6%97%a5", "日", true},
		{"caf\u00e9", "café", true}, // unescaped UTF-8 passes through
		{"100%", "", false},
		{"a%2", "", false},
		{"a%zz", "", false},
		{"%FF%FE", "", false},    // not UTF-8
		{"%E6%97", "", false},    // truncated UTF-8 sequence
		{"%C0%AF", "", false},    // overlong encoding of '/'
		{"%ED%A0%80", "", false}, // UTF-16 surrogate
	}
	for _, tt := range tests {
		got, err := DecodeKey(tt.raw)
		if !tt.ok {
			if err == nil || !failure.IsPermanent(err) || failure.ReasonOf(err) != ReasonBadKeyEncoding {
				t.Errorf("DecodeKey(%q) = %q, %v; want permanent %s", tt.raw, got, err, ReasonBadKeyEncoding)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("DecodeKey(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
		}
	}
}
