{{/* Names: the release name, shortened to fit DNS labels with a suffix; nameOverride and fullnameOverride as in most charts. */}}
{{- define "cccp.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "cccp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "cccp.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "cccp.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cccp.operatorName" -}}{{ include "cccp.fullname" . }}-operator{{- end -}}
{{- define "cccp.proxyName" -}}{{ include "cccp.fullname" . }}-proxy{{- end -}}
{{- define "cccp.controlServiceName" -}}{{ include "cccp.fullname" . }}-control{{- end -}}
{{- define "cccp.adminServiceName" -}}{{ include "cccp.fullname" . }}-proxy-admin{{- end -}}
{{- define "cccp.leaseName" -}}{{ include "cccp.fullname" . }}-operator{{- end -}}

{{- define "cccp.adminSecretName" -}}
{{- .Values.adminToken.existingSecret | default (printf "%s-admin-token" (include "cccp.fullname" .)) -}}
{{- end -}}

{{- define "cccp.controlTokensSecretName" -}}
{{- .Values.existingControlTokensSecret | default (printf "%s-control-tokens" (include "cccp.fullname" .)) -}}
{{- end -}}

{{- define "cccp.controlTokensEnabled" -}}
{{- if or .Values.existingControlTokensSecret .Values.controlTokens }}true{{ end -}}
{{- end -}}

{{- /* A digest pins the image exactly and wins over the tag. */ -}}
{{- define "cccp.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* Labels on every object; "component" says which part it belongs to. */}}
{{- define "cccp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "cccp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cccp-proxy
{{- end -}}

{{- define "cccp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cccp.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "cccp.componentLabels" -}}
{{ include "cccp.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- /*
Labels of a pod template: no chart version and no app version, so that a
chart bump alone changes nothing in the pod and restarts nothing (a proxy
restart drops every live session). The image tag changes a pod anyway.
*/ -}}
{{- define "cccp.podLabels" -}}
{{ include "cccp.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: cccp-proxy
{{- end -}}

{{- /* Probe timings from values (e.g. operator.livenessProbe); the endpoint stays the chart's. */ -}}
{{- define "cccp.probe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
{{- range $key := list "initialDelaySeconds" "periodSeconds" "timeoutSeconds" "successThreshold" "failureThreshold" }}
{{- if hasKey $.timings $key }}
{{ $key }}: {{ get $.timings $key }}
{{- end }}
{{- end }}
{{- end -}}

{{- /*
An IP address or CIDR as the proxy reads it (plain dotted quad or IPv6 text,
optional prefix within the family's bits). RE2 has no lookahead, so IPv6 is
spelled out form by form. Used by validate.yaml for readable refusals.
*/ -}}
{{- define "cccp.ipv4Pattern" -}}
((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])
{{- end -}}
{{- define "cccp.ipv6Pattern" -}}
{{- $h := "[0-9A-Fa-f]{1,4}" -}}
{{- $v4 := include "cccp.ipv4Pattern" . -}}
(({{ $h }}:){7}{{ $h }}|({{ $h }}:){1,7}:|({{ $h }}:){1,6}:{{ $h }}|({{ $h }}:){1,5}(:{{ $h }}){1,2}|({{ $h }}:){1,4}(:{{ $h }}){1,3}|({{ $h }}:){1,3}(:{{ $h }}){1,4}|({{ $h }}:){1,2}(:{{ $h }}){1,5}|{{ $h }}:(:{{ $h }}){1,6}|:((:{{ $h }}){1,7}|:)|({{ $h }}:){6}{{ $v4 }}|({{ $h }}:){0,5}:{{ $v4 }}|::({{ $h }}:){0,5}{{ $v4 }})
{{- end -}}

{{- /* Fails with a message naming the value when an entry of .list is not an IP or CIDR; .cidrOnly demands a prefix. */ -}}
{{- define "cccp.checkAddresses" -}}
{{- $v4 := include "cccp.ipv4Pattern" . -}}
{{- $v6 := include "cccp.ipv6Pattern" . -}}
{{- range $i, $entry := .list -}}
{{- $text := toString $entry -}}
{{- $ok := or (regexMatch (printf "^%s(/(3[0-2]|[12]?[0-9]))?$" $v4) $text) (regexMatch (printf "^%s(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?$" $v6) $text) -}}
{{- if and $ok $.cidrOnly (not (contains "/" $text)) -}}
{{- fail (printf "%s[%d] %q needs a prefix length: write a CIDR such as 192.0.2.0/24, or 192.0.2.7/32 for one address" $.name $i $text) -}}
{{- end -}}
{{- /* Peers are compared as IPv4, so a mapped range must stay inside ::ffff:0:0/96 (as proxy-pod/address-matcher.ts). */ -}}
{{- if and $ok (regexMatch "^::[fF]{4}:[0-9.]+/" $text) (lt (int (last (splitList "/" $text))) 96) -}}
{{- fail (printf "%s[%d] %q is an IPv4-mapped address with a prefix shorter than 96: write the IPv4 CIDR instead, such as 10.0.0.0/8" $.name $i $text) -}}
{{- end -}}
{{- if not $ok -}}
{{- fail (printf "%s[%d] %q is not an IP address or CIDR: write an IPv4 or IPv6 address, optionally with a prefix length (0-32 for IPv4, 0-128 for IPv6), such as 192.0.2.0/24 or 2001:db8::/32" $.name $i $text) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The restrictive container securityContext both containers share. */}}
{{- define "cccp.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "cccp.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Where the admin token is mounted in both pods. */}}
{{- define "cccp.adminTokenDir" -}}/var/run/cccp/admin-token{{- end -}}
{{- define "cccp.controlTokensDir" -}}/var/run/cccp/control-tokens{{- end -}}

{{/* A proxy.proxyProtocol mode as CCCP_PROXY_PROTOCOL_* reads it: YAML reads an unquoted off as false. */}}
{{- define "cccp.proxyProtocolMode" -}}
{{- $mode := toString (. | default "off") -}}
{{- if eq $mode "false" -}}off{{- else -}}{{ $mode }}{{- end -}}
{{- end -}}
