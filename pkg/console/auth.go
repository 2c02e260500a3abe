package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"unicode"

	"imgpipe/pkg/config"
)

// Auth says who may use the API. The zero value lets everyone in: only for a console bound to
// loopback (see CheckExposure).
type Auth struct {
	// Tokens are the bearer tokens accepted in "Authorization: Bearer TOKEN".
	Tokens []string
	// TrustedProxies are the addresses of reverse proxies (an OIDC proxy such as
	// oauth2-proxy) whose IdentityHeader is believed. The header from any other address is
	// ignored.
	TrustedProxies []netip.Prefix
	// IdentityHeader carries the authenticated user from a trusted proxy; default
	// X-Forwarded-User.
	IdentityHeader string
}

// DefaultIdentityHeader is the header oauth2-proxy (and others) set to the signed-in user.
const DefaultIdentityHeader = "X-Forwarded-User"

// Mode names the authentication in use: "none", "token", "proxy" or "token+proxy".
func (a *Auth) Mode() string {
	var m []string
	if len(a.Tokens) > 0 {
		m = append(m, "token")
	}
	if len(a.TrustedProxies) > 0 {
		m = append(m, "proxy")
	}
	if len(m) == 0 {
		return "none"
	}
	return strings.Join(m, "+")
}

// CheckExposure refuses to serve an address other than loopback without authentication.
func CheckExposure(addr string, a *Auth) error {
	if a.Mode() != "none" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q is not loopback: set a token (--token-file) or trusted proxies (--trusted-proxies) to serve it", addr)
	}
	return nil
}

// authenticator checks requests against an Auth.
type authenticator struct {
	tokens  [][sha256.Size]byte
	proxies []netip.Prefix
	header  string
	mode    string
}

func newAuthenticator(a Auth) *authenticator {
	au := &authenticator{proxies: a.TrustedProxies, header: a.IdentityHeader, mode: a.Mode()}
	if au.header == "" {
		au.header = DefaultIdentityHeader
	}
	for _, t := range a.Tokens {
		au.tokens = append(au.tokens, sha256.Sum256([]byte(t)))
	}
	return au
}

// identity is who a request speaks for: By says how it was authenticated ("none", "token"
// or "proxy"), User is the proxy's user name (empty otherwise).
type identity struct {
	By, User string
}

// identify returns who a request speaks for, or an error answer.
func (au *authenticator) identify(r *http.Request) (identity, *apiError) {
	if au.mode == "none" {
		return identity{By: "none"}, nil
	}
	peer := remoteIP(r)
	if len(au.proxies) > 0 && au.trusted(peer) {
		if user := r.Header.Get(au.header); user != "" {
			if !printable(user) || len(user) > 256 {
				return identity{}, &apiError{Status: 401, Code: CodeUnauthorized, Message: "the identity header holds an invalid value"}
			}
			return identity{By: "proxy", User: user}, nil
		}
	}
	if auth := r.Header.Get("Authorization"); auth != "" && len(au.tokens) > 0 {
		scheme, token, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return identity{}, &apiError{Status: 401, Code: CodeUnauthorized, Message: "use Authorization: Bearer TOKEN"}
		}
		sum := sha256.Sum256([]byte(token))
		for _, t := range au.tokens {
			if subtle.ConstantTimeCompare(sum[:], t[:]) == 1 {
				return identity{By: "token"}, nil
			}
		}
		return identity{}, &apiError{Status: 401, Code: CodeUnauthorized, Message: "the bearer token is not valid"}
	}
	msg := "authentication required"
	switch au.mode {
	case "token":
		msg = "authentication required: send Authorization: Bearer TOKEN"
	case "proxy", "token+proxy":
		msg = "authentication required: sign in through the console's proxy"
		if r.Header.Get(au.header) != "" {
			msg = "the identity header was sent from an address that is not a trusted proxy"
		}
	}
	return identity{}, &apiError{Status: 401, Code: CodeUnauthorized, Message: msg}
}

func (au *authenticator) trusted(ip netip.Addr) bool {
	for _, p := range au.proxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func remoteIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// ParsePrefixes reads a comma-separated list of IP addresses and CIDR prefixes
// ("10.0.0.0/8,127.0.0.1").
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range config.List(list) {
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a CIDR prefix", item)
		}
		out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
	}
	return out, nil
}
