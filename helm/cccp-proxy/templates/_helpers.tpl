{{/* Names: the release name, shortened to fit DNS labels with a suffix. */}}
{{- define "cccp.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
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

{{- define "cccp.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Labels on every object; "component" says which part it belongs to. */}}
{{- define "cccp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cccp-proxy
{{- end -}}

{{- define "cccp.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "cccp.componentLabels" -}}
{{ include "cccp.labels" .root }}
app.kubernetes.io/component: {{ .component }}
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
