# Sourced by the deploy scripts: pick a Docker client that can build with BuildKit.
# `docker build` of Docker >= 23 needs the buildx plugin for BuildKit; Debian's docker.io
# 20.10 client has BuildKit built in. DOCKER overrides the choice.
if [ -z "${DOCKER:-}" ]; then
  if docker buildx version >/dev/null 2>&1; then
    DOCKER=docker
  elif [ -x /usr/bin/docker ] && /usr/bin/docker version --format '{{.Client.Version}}' 2>/dev/null | grep -qE '^(19|20|21|22)\.'; then
    DOCKER=/usr/bin/docker
  else
    DOCKER=docker
  fi
fi
export DOCKER DOCKER_BUILDKIT=1

# pip's index and CA bundle as this machine configures them (environment first, then pip's
# own configuration), so builds reach the same index the host does. Nothing is hard-coded.
pip_setting() {  # pip_setting ENV_NAME config-key
  local value=${!1:-}
  if [ -z "$value" ]; then
    local pip
    pip=$(command -v pip3 || command -v pip || true)
    [ -n "$pip" ] && value=$("$pip" config get "global.$2" 2>/dev/null || true)
  fi
  printf '%s' "$value"
}
