package settings

import "testing"

func TestEnvOfTheBinaries(t *testing.T) {
	env, err := Env("../../..", map[string]string{"analyzer": "./cmd/analyzer", "indexer": "./cmd/indexer"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		bin, env, flag string
		required       bool
	}{
		{"analyzer", "IMGPIPE_QUEUE_URL", "queue-url", true},
		{"analyzer", "AZURE_FEDERATED_TOKEN_FILE", "azure-federated-token-file", false},
		{"analyzer", "IMGPIPE_ORDERING_KEYS", "ordering-keys", false},
		{"indexer", "IMGPIPE_SUBSCRIPTION", "subscription", true}, // required by "run" only
		{"indexer", "IMGPIPE_COLLECTION", "collection", false},
	}
	for _, tc := range cases {
		s, ok := env[tc.bin][tc.env]
		if !ok || s.Flag != tc.flag || s.Required != tc.required {
			t.Errorf("%s %s = %+v (found %v), want flag %s required %v", tc.bin, tc.env, s, ok, tc.flag, tc.required)
		}
	}
	if _, ok := env["indexer"][""]; ok {
		t.Error("a flag without a variable (--json) was listed")
	}
	if _, err := Env("../../..", map[string]string{"x": "./pkg/config"}); err != nil {
		t.Fatalf("a package without settings: %v", err)
	}
}
