package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCredentialChoice(t *testing.T) {
	fed := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(fed, []byte("eyJ.federated.sig"), 0o600); err != nil {
		t.Fatal(err)
	}
	wi := func(s *settings) { s.federatedFile, s.azureTenant, s.azureClient = fed, "tenant-1", "client-1" }
	cases := []struct {
		name    string
		set     func(*settings)
		want    string // in the credential's description
		wantErr string
	}{
		{"key", func(s *settings) { s.visionKey = "k3y-secret" }, "KeyCredential", ""},
		{"workload identity", wi, "workload identity federation, tenant tenant-1, client client-1", ""},
		{"workload identity without tenant", func(s *settings) { wi(s); s.azureTenant = "" }, "", "--azure-tenant-id (AZURE_TENANT_ID)"},
		{"workload identity without client", func(s *settings) { wi(s); s.azureClient = "" }, "", "--azure-client-id (AZURE_CLIENT_ID)"},
		{"workload identity and a key", func(s *settings) { wi(s); s.visionKey = "k" }, "", "give exactly one"},
		{"workload identity, plain-http authority", func(s *settings) { wi(s); s.authority = "http://login.example" }, "", "https"},
		{"none", func(*settings) {}, "", "give exactly one"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &settings{}
			tc.set(s)
			c, err := credential(s)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(c); !strings.Contains(got, tc.want) || strings.Contains(got, "k3y-secret") || strings.Contains(got, "federated.sig") {
				t.Fatalf("credential %q, want one saying %q and no secret", got, tc.want)
			}
		})
	}
}
