# <namespace>/<name>
terraform import gitlabflux_agent_install.prod gitlab-agent/gitlab-agent
