package uploader

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

const testSHA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestKeyForDeterministicSchemes(t *testing.T) {
	tests := []struct {
		name   string
		scheme KeyScheme
		prefix string
		rel    string
		want   string
	}{
		{"hash simple", KeysHash, "upload/", "a.jpg", "upload/0123456789abcdef/a.jpg"},
		{"hash uses base name only", KeysHash, "upload/", "dir/sub/a.jpg", "upload/0123456789abcdef/a.jpg"},
		{"hash windows separators", KeysHash, "upload/", `dir\sub\a.jpg`, "upload/0123456789abcdef/a.jpg"},
		{"hash spaces and unicode kept", KeysHash, "upload/", "Été à Paris (1).jpg", "upload/0123456789abcdef/Été à Paris (1).jpg"},
		{"hash odd characters kept", KeysHash, "upload/", "a+b&c=d%20?#.png", "upload/0123456789abcdef/a+b&c=d%20?#.png"},
		{"hash empty prefix", KeysHash, "", "a.jpg", "0123456789abcdef/a.jpg"},
		{"hash invalid utf8 escaped", KeysHash, "upload/", "caf\xe9.jpg", "upload/0123456789abcdef/caf%E9.jpg"},
		{"hash control chars escaped", KeysHash, "upload/", "a\tb\x7f.jpg", "upload/0123456789abcdef/a%09b%7F.jpg"},
		{"path keeps dirs", KeysPath, "upload/", "2024/june/a b.jpg", "upload/2024/june/a b.jpg"},
		{"path backslashes", KeysPath, "upload/", `2024\june\a.jpg`, "upload/2024/june/a.jpg"},
		{"path drops dot segments", KeysPath, "upload/", "./x/../y//a.jpg", "upload/x/y/a.jpg"},
		{"path unicode", KeysPath, "in/", "日本/写真.png", "in/日本/写真.png"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := KeyFor(tc.scheme, tc.prefix, tc.rel, testSHA)
			if got != tc.want {
				t.Errorf("KeyFor = %q, want %q", got, tc.want)
			}
			if again := KeyFor(tc.scheme, tc.prefix, tc.rel, testSHA); again != got {
				t.Errorf("not stable: %q then %q", got, again)
			}
		})
	}
}

func TestKeyForLongNames(t *testing.T) {
	longUnicode := strings.Repeat("é", 600) + ".jpeg" // 1205 bytes
	longDirs := strings.Repeat("d", 700) + "/" + strings.Repeat("e", 400) + "/x.png"
	tests := []struct {
		name    string
		scheme  KeyScheme
		prefix  string
		rel     string
		wantExt string
		wantDir string // the key must start with it
	}{
		{"hash long unicode", KeysHash, "upload/", longUnicode, ".jpeg", "upload/0123456789abcdef/éé"},
		{"path long base", KeysPath, "upload/", "a/b/" + longUnicode, ".jpeg", "upload/a/b/éé"},
		{"path long dirs", KeysPath, "upload/", longDirs, ".png", "upload/ddd"},
		{"uuid long", KeysUUID, "upload/", longUnicode, ".jpeg", "upload/"},
		{"long prefix", KeysHash, strings.Repeat("p", MaxPrefixLen), longUnicode, ".jpeg", strings.Repeat("p", MaxPrefixLen)},
		{"long extension is not kept as extension", KeysHash, "upload/", strings.Repeat("x", 1100) + "." + strings.Repeat("y", 40), "", "upload/0123456789abcdef/xxx"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := KeyFor(tc.scheme, tc.prefix, tc.rel, testSHA)
			if len(got) > MaxKeyLen {
				t.Fatalf("key is %d bytes, more than %d", len(got), MaxKeyLen)
			}
			if !utf8.ValidString(got) {
				t.Fatalf("key %q is not valid UTF-8", got)
			}
			if !strings.HasSuffix(got, tc.wantExt) {
				t.Errorf("key %q lost extension %q", got, tc.wantExt)
			}
			if !strings.HasPrefix(got, tc.wantDir) {
				t.Errorf("key %q does not start with %q", got[:min(len(got), 80)], tc.wantDir[:min(len(tc.wantDir), 80)])
			}
			if !strings.Contains(got, "~") {
				t.Errorf("shortened key %q has no digest marker", got)
			}
		})
	}
}

func TestKeyForShortenedNamesStayDistinct(t *testing.T) {
	a := strings.Repeat("n", 1100) + "-a.jpg"
	b := strings.Repeat("n", 1100) + "-b.jpg"
	for _, s := range []KeyScheme{KeysHash, KeysPath} {
		ka, kb := KeyFor(s, "upload/", a, testSHA), KeyFor(s, "upload/", b, testSHA)
		if ka == kb {
			t.Errorf("%s: two long names share key %q", s, ka)
		}
	}
}

func TestKeyForUUID(t *testing.T) {
	re := regexp.MustCompile(`^upload/[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/a b\.jpg$`)
	seen := map[string]bool{}
	for range 1000 {
		k := KeyFor(KeysUUID, "upload/", "dir/a b.jpg", testSHA)
		if !re.MatchString(k) {
			t.Fatalf("uuid key %q has the wrong shape", k)
		}
		if seen[k] {
			t.Fatalf("uuid key %q drawn twice", k)
		}
		seen[k] = true
	}
}

func TestKeyForDistinctContentDistinctKeys(t *testing.T) {
	other := strings.Replace(testSHA, "0", "f", 1)
	if KeyFor(KeysHash, "upload/", "a.jpg", testSHA) == KeyFor(KeysHash, "upload/", "a.jpg", other) {
		t.Error("different content under one name got one key")
	}
}

func TestParseKeyScheme(t *testing.T) {
	for _, ok := range []string{"hash", "path", "uuid"} {
		if s, err := ParseKeyScheme(ok); err != nil || string(s) != ok {
			t.Errorf("ParseKeyScheme(%q) = %q, %v", ok, s, err)
		}
	}
	for _, bad := range []string{"", "Hash", "random"} {
		if _, err := ParseKeyScheme(bad); err == nil {
			t.Errorf("ParseKeyScheme(%q) accepted", bad)
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{
		{"upload/", true}, {"", true}, {"a/b-", true}, {"/upload/", false},
		{"bad\xff/", false}, {strings.Repeat("p", MaxPrefixLen+1), false},
	} {
		if err := CheckPrefix(tc.prefix); (err == nil) != tc.ok {
			t.Errorf("CheckPrefix(%q) = %v, want ok=%v", tc.prefix, err, tc.ok)
		}
	}
}

func TestEncodeName(t *testing.T) {
	for _, name := range []string{
		"a.jpg", "Été à Paris (1).jpg", "a+b&c=d%20?#.png", "caf\xe9.jpg", "日本 写真.png", "tab\there", "",
	} {
		enc := EncodeName(name)
		for i := 0; i < len(enc); i++ {
			if c := enc[i]; c < 0x21 || c > 0x7e {
				t.Errorf("EncodeName(%q) = %q has byte %#x unfit for a header", name, enc, c)
			}
		}
		dec, err := DecodeName(enc)
		if err != nil || dec != name {
			t.Errorf("DecodeName(EncodeName(%q)) = %q, %v", name, dec, err)
		}
	}
	if got := EncodeName("a b+é.jpg"); got != "a%20b%2B%C3%A9.jpg" {
		t.Errorf("EncodeName = %q", got)
	}
}

func FuzzKeyFor(f *testing.F) {
	f.Add("upload/", "a/b c.jpg", "hash")
	f.Add("", strings.Repeat("é", 700)+".png", "path")
	f.Add("x/", "caf\xe9\\..\\x.jpg", "uuid")
	f.Fuzz(func(t *testing.T, prefix, rel, scheme string) {
		if CheckPrefix(prefix) != nil {
			return
		}
		s, err := ParseKeyScheme(scheme)
		if err != nil {
			s = KeysHash
		}
		k := KeyFor(s, prefix, rel, testSHA)
		if len(k) > MaxKeyLen || !utf8.ValidString(k) || !strings.HasPrefix(k, prefix) {
			t.Fatalf("KeyFor(%q, %q, %q) = %q (%d bytes)", s, prefix, rel, k, len(k))
		}
		if len(k) == len(prefix) || strings.HasSuffix(k, "/") {
			t.Fatalf("KeyFor(%q, %q, %q) = %q has no name", s, prefix, rel, k)
		}
		if strings.ContainsFunc(k[len(prefix):], isControl) {
			t.Fatalf("key %q has a control character", k)
		}
	})
}
