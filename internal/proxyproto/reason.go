package proxyproto

import "errors"

// Reason names the class of a Parse error in a few stable words, for a
// metric label or a structured log field ("no_header", "too_long",
// "version", "command", "family", "malformed"; "incomplete" for
// ErrIncomplete; "other" for an error not from this package, "" for nil).
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrIncomplete):
		return "incomplete"
	case errors.Is(err, ErrNoHeader):
		return "no_header"
	case errors.Is(err, ErrTooLong):
		return "too_long"
	case errors.Is(err, ErrVersion):
		return "version"
	case errors.Is(err, ErrCommand):
		return "command"
	case errors.Is(err, ErrFamily):
		return "family"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	}
	return "other"
}
