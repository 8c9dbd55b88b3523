package federation

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-fed/httpsig"
)

// The headers a signature must cover, as Mastodon signs and requires them: the
// request line, the host and the date always, and the body's digest on a POST.
// Mastodon also signs content-type on a POST; so does the hub, but it does not
// require it of others.
var (
	signedPOST = []string{httpsig.RequestTarget, "host", "date", "digest", "content-type"}
	signedGET  = []string{httpsig.RequestTarget, "host", "date"}
)

// sign signs req (whose Date and Host headers are set) with key as keyID; a non-nil
// body is digested first (Digest: SHA-256=...).
func sign(req *http.Request, body []byte, key *rsa.PrivateKey, keyID string) error {
	headers := signedGET
	if body != nil {
		headers = signedPOST
	}
	signer, _, err := httpsig.NewSigner([]httpsig.Algorithm{httpsig.RSA_SHA256}, httpsig.DigestSha256, headers, httpsig.Signature, 0)
	if err != nil {
		return fmt.Errorf("make a signer: %w", err)
	}
	if err := signer.SignRequest(key, keyID, req, body); err != nil {
		return fmt.Errorf("sign %s %s: %w", req.Method, req.URL, err)
	}
	return nil
}

// signatureParams reads the keyId and headers of a Signature header (or of an
// Authorization: Signature header); ok is false when there is none.
func signatureParams(h http.Header) (keyID string, headers []string, ok bool) {
	raw := h.Get("Signature")
	if raw == "" {
		raw, ok = strings.CutPrefix(h.Get("Authorization"), "Signature ")
		if !ok {
			return "", nil, false
		}
	}
	headers = []string{"date"} // the draft's default when the parameter is absent
	for _, part := range strings.Split(raw, ",") {
		k, v, found := strings.Cut(strings.TrimSpace(part), "=")
		if !found {
			continue
		}
		v = strings.Trim(v, `"`)
		switch k {
		case "keyId":
			keyID = v
		case "headers":
			headers = strings.Fields(strings.ToLower(v))
		}
	}
	return keyID, headers, keyID != ""
}

// checkSigned checks what the signature library leaves to its caller: that the
// signature covers the request line, host and date (and the digest on a POST), that
// the Date is within skew of now, and that the Digest is the body's. Each failure is
// ErrBadSignature, with why.
func checkSigned(r *http.Request, body []byte, headers []string, now time.Time, skew time.Duration) error {
	need := []string{httpsig.RequestTarget, "host", "date"}
	if r.Method == http.MethodPost {
		need = append(need, "digest")
	}
	for _, h := range need {
		if !slices.Contains(headers, h) {
			return fmt.Errorf("%w: the signature does not cover %s", ErrBadSignature, h)
		}
	}
	date, err := http.ParseTime(r.Header.Get("Date"))
	if err != nil {
		return fmt.Errorf("%w: no valid Date header", ErrBadSignature)
	}
	if d := now.Sub(date); d > skew || d < -skew {
		return fmt.Errorf("%w: the Date %s is more than %s from the hub's clock", ErrBadSignature, r.Header.Get("Date"), skew)
	}
	if r.Method == http.MethodPost {
		if err := checkDigest(r.Header.Get("Digest"), body); err != nil {
			return err
		}
	}
	return nil
}

// checkDigest checks a Digest header's SHA-256 against body. Other algorithms in the
// header are ignored; SHA-256 must be among them.
func checkDigest(header string, body []byte) error {
	sum := sha256.Sum256(body)
	want := base64.StdEncoding.EncodeToString(sum[:])
	for _, d := range strings.Split(header, ",") {
		algo, val, ok := strings.Cut(strings.TrimSpace(d), "=")
		if ok && strings.EqualFold(algo, "SHA-256") {
			if val != want {
				return fmt.Errorf("%w: the Digest is not the body's (was the body changed on the way?)", ErrBadSignature)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: no SHA-256 Digest header", ErrBadSignature)
}

// Verify checks an inbound request's HTTP signature and returns the actor that signed
// it. It ends one of two ways: the signer (the signature verified against its key,
// fetched or cached); or ErrBadSignature: unsigned, stale, changed, not verifying even
// after the key is fetched afresh (as after a key rotation), or its key could not be
// fetched (its server is down, or at an address the guard refuses).
func (s *Service) Verify(ctx context.Context, r *http.Request, body []byte) (RemoteActor, error) {
	keyID, headers, ok := signatureParams(r.Header)
	if !ok {
		return RemoteActor{}, fmt.Errorf("%w: the request is not signed", ErrBadSignature)
	}
	if err := checkSigned(r, body, headers, s.opts.Clock(), s.opts.MaxClockSkew); err != nil {
		return RemoteActor{}, err
	}
	v, err := httpsig.NewVerifier(r)
	if err != nil {
		return RemoteActor{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	actor, cached, err := s.signer(ctx, keyID, false)
	if err != nil {
		// As Mastodon answers: 401, which the sender retries (its server may be back).
		return RemoteActor{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	err = v.Verify(actor.key, httpsig.RSA_SHA256)
	if err != nil && cached {
		// The signer may have a new key since it was cached: fetch it once more.
		if actor, _, err = s.signer(ctx, keyID, true); err != nil {
			return RemoteActor{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
		}
		err = v.Verify(actor.key, httpsig.RSA_SHA256)
	}
	if err != nil {
		return RemoteActor{}, fmt.Errorf("%w: it does not verify against the key %s", ErrBadSignature, keyID)
	}
	return actor, nil
}
