package uploader

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"time"
	"unicode/utf8"
)

// KeyScheme says how an object key is made from a file.
type KeyScheme string

// The key schemes. Every key starts with the uploader's prefix.
const (
	// KeysHash is PREFIX + the first 16 hex digits of the file's SHA-256 + "/" + base name.
	// The same content under the same name always gets the same key, so a second upload is
	// recognised as a duplicate and `status FILE` can recompute the key from the file alone.
	KeysHash KeyScheme = "hash"
	// KeysPath is PREFIX + the file's path relative to the directory given on the command line
	// (a file given by itself: its base name), with '/' separators.
	KeysPath KeyScheme = "path"
	// KeysUUID is PREFIX + a time-ordered random ID (UUIDv7 layout) + "/" + base name: a new key
	// on every upload.
	KeysUUID KeyScheme = "uuid"
)

// ParseKeyScheme reads a scheme name: "hash", "path" or "uuid".
func ParseKeyScheme(s string) (KeyScheme, error) {
	switch k := KeyScheme(s); k {
	case KeysHash, KeysPath, KeysUUID:
		return k, nil
	}
	return "", fmt.Errorf("unknown key scheme %q (want hash, path or uuid)", s)
}

// MaxKeyLen is the longest S3 object key, in bytes of UTF-8.
const MaxKeyLen = 1024

// MaxPrefixLen bounds the prefix so that every scheme still has room for a name.
const MaxPrefixLen = 512

// maxExtLen is the longest extension kept when a name is shortened; a longer "extension" is
// treated as part of the name.
const maxExtLen = 16

// KeyFor returns the object key of a file under scheme. relPath is the file's path relative to
// the directory it was found in ('/' or '\' separated; for a file given by itself, its name) and
// sha256hex the hex SHA-256 of its content (used by KeysHash only).
//
// The key is valid UTF-8 and at most MaxKeyLen bytes: bytes of relPath that are not UTF-8 and
// control characters become %XX, and a name too long for the limit is shortened, keeping its
// extension and adding a digest of the full name so that shortened names stay distinct.
// KeysHash and KeysPath are deterministic; KeysUUID draws a new ID on every call.
// prefix must be valid UTF-8 and at most MaxPrefixLen bytes (New checks it).
func KeyFor(scheme KeyScheme, prefix, relPath, sha256hex string) string {
	rel := cleanRel(relPath)
	base := path.Base(rel)
	switch scheme {
	case KeysPath:
		return fitKey(prefix, rel, true)
	case KeysUUID:
		return fitKey(prefix+newUUIDv7()+"/", base, false)
	default:
		h := sha256hex
		if len(h) > 16 {
			h = h[:16]
		}
		return fitKey(prefix+strings.ToLower(h)+"/", base, false)
	}
}

// cleanRel normalises a relative path: '\' becomes '/', empty, "." and ".." segments are
// dropped, and every segment is made safe for a key.
func cleanRel(rel string) string {
	rel = strings.ReplaceAll(rel, `\`, "/")
	var segs []string
	for _, s := range strings.Split(rel, "/") {
		if s == "" || s == "." || s == ".." {
			continue
		}
		segs = append(segs, safeSegment(s))
	}
	if len(segs) == 0 {
		return "_"
	}
	return strings.Join(segs, "/")
}

// safeSegment escapes the bytes of s that do not belong in a key: bytes that are not part of
// valid UTF-8, ASCII control characters and DEL become %XX (upper-case hex).
func safeSegment(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || isControl(r) {
			for j := 0; j < n; j++ {
				fmt.Fprintf(&b, "%%%02X", s[i+j])
			}
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// fitKey joins head and name, shortening name when the key would pass MaxKeyLen. With
// nameMayHaveDirs (the path scheme) name's directories are shortened as part of it when the
// base name alone cannot make room.
func fitKey(head, name string, nameMayHaveDirs bool) string {
	if len(head)+len(name) <= MaxKeyLen {
		return head + name
	}
	if nameMayHaveDirs {
		dir, base := path.Split(name)
		if len(head)+len(dir)+minShortName <= MaxKeyLen {
			return head + dir + shorten(base, MaxKeyLen-len(head)-len(dir))
		}
	}
	room := MaxKeyLen - len(head)
	if room < minShortName {
		// Only a prefix far beyond MaxPrefixLen gets here; keep the key valid anyway.
		return truncUTF8(head, MaxKeyLen-minShortName) + shorten(name, minShortName)
	}
	return head + shorten(name, room)
}

// minShortName is the room shorten needs: "~", 12 digest digits and an extension.
const minShortName = 1 + 12 + maxExtLen

// shorten returns name cut to at most max bytes: the start of its stem, "~", 12 hex digits of
// the SHA-256 of the whole name, and its extension.
func shorten(name string, max int) string {
	if len(name) <= max {
		return name
	}
	ext := path.Ext(name)
	if len(ext) > maxExtLen || ext == name {
		ext = ""
	}
	sum := sha256.Sum256([]byte(name))
	tail := "~" + hex.EncodeToString(sum[:6]) + ext
	stem := strings.TrimSuffix(name, ext)
	return truncUTF8(stem, max-len(tail)) + tail
}

// truncUTF8 cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// newUUIDv7 returns a UUID in the version 7 layout: 48 bits of Unix milliseconds, then random
// bits, so that keys sort roughly by upload time.
func newUUIDv7() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails on supported platforms
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(time.Now().UnixMilli()))
	copy(u[:6], ms[2:])
	u[6] = (u[6] & 0x0f) | 0x70 // version 7
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 9562 variant
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// CheckPrefix checks that prefix can start S3 keys: valid UTF-8, at most MaxPrefixLen bytes,
// no leading slash.
func CheckPrefix(prefix string) error {
	switch {
	case !utf8.ValidString(prefix):
		return fmt.Errorf("prefix %q is not valid UTF-8", prefix)
	case len(prefix) > MaxPrefixLen:
		return fmt.Errorf("prefix is %d bytes, at most %d allowed", len(prefix), MaxPrefixLen)
	case strings.HasPrefix(prefix, "/"):
		return fmt.Errorf("prefix %q starts with '/': S3 keys have no leading slash", prefix)
	}
	return nil
}
