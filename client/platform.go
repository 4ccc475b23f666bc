package client

import "strings"

// Platform returns the agent's operating system and architecture: the os_id
// and arch fields when the API sent them, otherwise what the user agent
// string says ("buildkite-agent/3.x (linux; amd64)"). Unknown parts are "".
func (a *Agent) Platform() (os, arch string) {
	os, arch = a.OSID, a.Arch
	if os != "" && arch != "" {
		return os, arch
	}
	uaOS, uaArch := parseUserAgentPlatform(a.UserAgent)
	if os == "" {
		os = uaOS
	}
	if arch == "" {
		arch = uaArch
	}
	return os, arch
}

// parseUserAgentPlatform reads "(os; arch)" from a buildkite-agent user agent.
func parseUserAgentPlatform(ua string) (os, arch string) {
	open := strings.IndexByte(ua, '(')
	if open < 0 {
		return "", ""
	}
	rest := ua[open+1:]
	end := strings.IndexByte(rest, ')')
	if end < 0 {
		return "", ""
	}
	parts := strings.Split(rest[:end], ";")
	os = strings.TrimSpace(parts[0])
	if len(parts) > 1 {
		arch = strings.TrimSpace(parts[1])
	}
	return os, arch
}
