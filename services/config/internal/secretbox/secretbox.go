// Package secretbox seals connector secrets for storage with AES-256-GCM.
//
// A Keyring holds one or more 32-byte keys: the first seals, all open. Each
// sealed value names the key that sealed it, so adding a new key in front
// and re-sealing (Keyring.Current reports whether a value needs it) retires
// an old key without downtime. The caller passes associated data (the
// record and field a secret belongs to) so a sealed value copied onto
// another record or field does not open.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of an AES-256 key.
const KeySize = 32

// prefix versions the sealed format: "sb1.<key id>.<base64 nonce||ciphertext>".
const prefix = "sb1"

// ErrOpen is returned for a value that does not open: unknown key, wrong
// associated data, or tampering.
var ErrOpen = errors.New("secretbox: cannot open sealed value")

type key struct {
	id   string
	aead cipher.AEAD
}

// Keyring seals with its first key and opens with any.
type Keyring struct {
	current key
	byID    map[string]key
}

// New builds a keyring from raw 32-byte keys; the first one seals.
func New(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("secretbox: no key")
	}
	kr := &Keyring{byID: map[string]key{}}
	for i, raw := range keys {
		if len(raw) != KeySize {
			return nil, fmt.Errorf("secretbox: key %d is %d bytes, want %d", i+1, len(raw), KeySize)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("secretbox: key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("secretbox: key %d: %w", i+1, err)
		}
		k := key{id: keyID(raw), aead: aead}
		if _, dup := kr.byID[k.id]; dup {
			return nil, fmt.Errorf("secretbox: key %d repeats an earlier key", i+1)
		}
		kr.byID[k.id] = k
		if i == 0 {
			kr.current = k
		}
	}
	return kr, nil
}

// Parse reads a comma-separated list of hex-encoded 32-byte keys (64 hex
// characters each). Error messages never contain key material.
func Parse(s string) (*Keyring, error) {
	var keys [][]byte
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		b, err := hex.DecodeString(part)
		if err != nil {
			return nil, fmt.Errorf("secretbox: key %d is not hex", i+1)
		}
		keys = append(keys, b)
	}
	return New(keys...)
}

// keyID names a key without revealing it: the first 8 hex digits of its
// SHA-256.
func keyID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:4])
}

// CurrentKeyID is the id of the sealing key.
func (k *Keyring) CurrentKeyID() string { return k.current.id }

// Seal encrypts plaintext bound to aad. The empty string seals to the empty
// string, so an absent secret stays absent.
func (k *Keyring) Seal(plaintext, aad string) (string, error) {
	if plaintext == "" {
		return "", nil
	}
	nonce := make([]byte, k.current.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secretbox: nonce: %w", err)
	}
	out := k.current.aead.Seal(nonce, nonce, []byte(plaintext), []byte(aad))
	return prefix + "." + k.current.id + "." + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts a value sealed by Seal with the same aad.
func (k *Keyring) Open(sealed, aad string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	id, data, err := split(sealed)
	if err != nil {
		return "", err
	}
	kk, ok := k.byID[id]
	if !ok {
		return "", fmt.Errorf("%w: key %s is not configured", ErrOpen, id)
	}
	raw, err := base64.RawStdEncoding.DecodeString(data)
	if err != nil || len(raw) < kk.aead.NonceSize() {
		return "", fmt.Errorf("%w: malformed", ErrOpen)
	}
	n := kk.aead.NonceSize()
	plain, err := kk.aead.Open(nil, raw[:n], raw[n:], []byte(aad))
	if err != nil {
		return "", ErrOpen
	}
	return string(plain), nil
}

// Current reports whether sealed was sealed with the current key (the empty
// value always is).
func (k *Keyring) Current(sealed string) bool {
	if sealed == "" {
		return true
	}
	id, _, err := split(sealed)
	return err == nil && id == k.current.id
}

func split(sealed string) (id, data string, err error) {
	p := strings.SplitN(sealed, ".", 3)
	if len(p) != 3 || p[0] != prefix {
		return "", "", fmt.Errorf("%w: unknown format", ErrOpen)
	}
	return p[1], p[2], nil
}

// Hint masks a secret for display: an ellipsis and its last four characters,
// or only the ellipsis when the secret is too short to show any of it.
func Hint(secret string) string {
	if secret == "" {
		return ""
	}
	r := []rune(secret)
	if len(r) < 12 {
		return "…"
	}
	return "…" + string(r[len(r)-4:])
}
