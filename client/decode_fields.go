package client

import (
	"unicode"
	"unicode/utf8"
)

// field identifies a member kept from an agent or job object.
type field uint8

const (
	fUnknown field = iota
	fID
	fName
	fConnectionState
	fHostname
	fIPAddress
	fUserAgent
	fVersion
	fOSID
	fArch
	fQueue
	fMetaData
	fPriority
	fCreatedAt
	fConnectedAt
	fDisconnectedAt
	fLostAt
	fStoppedAt
	fLastJobFinishedAt
	fPaused
	fPausedAt
	fPausedNote
	fJob
	fState     // job
	fStartedAt // job
)

// agentFields are an agent's kept members by name, folded as encoding/json
// folds names for its case-insensitive match (ASCII letters upper-cased).
var agentFields = map[string]field{
	"ID": fID, "NAME": fName, "CONNECTION_STATE": fConnectionState, "HOSTNAME": fHostname,
	"IP_ADDRESS": fIPAddress, "USER_AGENT": fUserAgent, "VERSION": fVersion, "OS_ID": fOSID,
	"ARCH": fArch, "QUEUE": fQueue, "META_DATA": fMetaData, "PRIORITY": fPriority,
	"CREATED_AT": fCreatedAt, "CONNECTED_AT": fConnectedAt, "DISCONNECTED_AT": fDisconnectedAt,
	"LOST_AT": fLostAt, "STOPPED_AT": fStoppedAt, "LAST_JOB_FINISHED_AT": fLastJobFinishedAt,
	"PAUSED": fPaused, "PAUSED_AT": fPausedAt, "PAUSED_NOTE": fPausedNote, "JOB": fJob,
}

var jobFields = map[string]field{"ID": fID, "STATE": fState, "STARTED_AT": fStartedAt}

// agentField maps a member name of an agent object, as scanned (quotes
// excluded, with its scanString flags), to its field.
func agentField(name []byte, flags uint8) field {
	if flags == 0 {
		switch string(name) { // the exact names Buildkite sends; no allocation
		case "id":
			return fID
		case "name":
			return fName
		case "connection_state":
			return fConnectionState
		case "hostname":
			return fHostname
		case "ip_address":
			return fIPAddress
		case "user_agent":
			return fUserAgent
		case "version":
			return fVersion
		case "os_id":
			return fOSID
		case "arch":
			return fArch
		case "queue":
			return fQueue
		case "meta_data":
			return fMetaData
		case "priority":
			return fPriority
		case "created_at":
			return fCreatedAt
		case "connected_at":
			return fConnectedAt
		case "disconnected_at":
			return fDisconnectedAt
		case "lost_at":
			return fLostAt
		case "stopped_at":
			return fStoppedAt
		case "last_job_finished_at":
			return fLastJobFinishedAt
		case "paused":
			return fPaused
		case "paused_at":
			return fPausedAt
		case "paused_note":
			return fPausedNote
		case "job":
			return fJob
		}
	}
	return foldedField(name, flags, agentFields)
}

func jobField(name []byte, flags uint8) field {
	if flags == 0 {
		switch string(name) {
		case "id":
			return fID
		case "state":
			return fState
		case "started_at":
			return fStartedAt
		}
	}
	return foldedField(name, flags, jobFields)
}

// foldedField is encoding/json's fallback match: the name unquoted, folded
// (appendFoldedName in encoding/json's fold.go) and looked up. (Its exact match needs no step of its own: no two fields
// fold alike.) A name of ASCII without escapes or upper case that matched
// no field exactly cannot match folded, which is every unknown field
// Buildkite sends.
func foldedField(name []byte, flags uint8, fields map[string]field) field {
	if flags == 0 {
		upper := false
		for _, c := range name {
			if 'A' <= c && c <= 'Z' {
				upper = true
				break
			}
		}
		if !upper {
			return fUnknown
		}
	}
	var arr, farr [32]byte
	if !plainString(name, flags) {
		name = appendUnquoted(arr[:0], name)
	}
	folded := farr[:0]
	for i := 0; i < len(name); {
		if c := name[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			folded = append(folded, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(name[i:])
		folded = utf8.AppendRune(folded, foldRune(r))
		i += n
	}
	return fields[string(folded)]
}

// foldRune is encoding/json's (fold.go): the smallest rune of r's fold
// set. The Kelvin sign folds to 'K' and the long s to 'S'; the dotless ı
// and the dotted İ fold to themselves, not to 'I'.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}
