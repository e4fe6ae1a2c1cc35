{{/*
Names and labels shared by every template.
*/}}

{{/* The operator's objects: "<release>-operator", or the release name when it already says so. */}}
{{- define "cachebridge.fullname" -}}
{{- if hasSuffix "operator" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
Selector labels. `app.kubernetes.io/name: cachebridge-operator` is not cosmetic: the
NetworkPolicy the operator puts in front of every managed Redis admits pods with this
label from the operator's namespace (operator/src/desired/policy.rs, OPERATOR_POD_LABEL).
*/}}
{{- define "cachebridge.selectorLabels" -}}
app.kubernetes.io/name: cachebridge-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cachebridge.labels" -}}
{{ include "cachebridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: cachebridge
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "cachebridge.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "cachebridge.dataplaneImage" -}}
{{- printf "%s:%s" .Values.dataplaneImage.repository (.Values.dataplaneImage.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The Lease the replicas elect a leader with: one per release. */}}
{{- define "cachebridge.leaseName" -}}
{{- include "cachebridge.fullname" . -}}
{{- end -}}
