{{/*
Monitoring names. The alerts and the dashboard select the jobs cccp-operator
and cccp-proxy; the metrics Services carry the job name in this label, and
the ServiceMonitor (jobLabel), the PodMonitor (relabelings) and the README's
plain scrape config all take the job from it.
*/}}
{{- define "cccp.metricsJobLabel" -}}cccp.tcxn.net/metrics-job{{- end -}}
{{- define "cccp.operatorMetricsJob" -}}cccp-operator{{- end -}}
{{- define "cccp.proxyMetricsJob" -}}cccp-proxy{{- end -}}
{{- define "cccp.operatorMetricsServiceName" -}}{{ include "cccp.fullname" . }}-operator-metrics{{- end -}}
{{- define "cccp.proxyMetricsServiceName" -}}{{ include "cccp.fullname" . }}-proxy-metrics{{- end -}}

{{/* The scrape parts: component, Service name, job, container port name. */}}
{{- define "cccp.metricsTargets" -}}
- component: operator
  service: {{ include "cccp.operatorMetricsServiceName" . }}
  job: {{ include "cccp.operatorMetricsJob" . }}
  targetPort: control
  port: {{ .Values.operator.controlPort }}
- component: proxy
  service: {{ include "cccp.proxyMetricsServiceName" . }}
  job: {{ include "cccp.proxyMetricsJob" . }}
  targetPort: health
  port: {{ .Values.proxy.healthPort }}
{{- end -}}
