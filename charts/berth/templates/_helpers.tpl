{{/* Chart name, shortened to the 63 characters a label value allows. */}}
{{- define "berth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name of the chart's objects. */}}
{{- define "berth.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "berth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "berth.labels" -}}
helm.sh/chart: {{ include "berth.chart" . }}
{{ include "berth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "berth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "berth.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "berth.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* A TOML table key: bare when it can be, quoted otherwise. */}}
{{- define "berth.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{/* The RuntimeClass name of one handler: (dict "name" NAME "rt" VALUES "root" $). */}}
{{- define "berth.runtimeClassName" -}}
{{- default (printf "%s%s" .root.Values.runtimeClass.namePrefix .name) .rt.runtimeClassName }}
{{- end }}

{{/*
berthd's configuration drop-in. Strings and lists are written with toJson: a JSON string or
array of strings is also a valid TOML value.
*/}}
{{- define "berth.configToml" -}}
{{- $c := .Values.config -}}
# Written by the berth Helm chart (release {{ .Release.Name }}, namespace {{ .Release.Namespace }}).
# Merged by berthd over /etc/berth/config.toml; edit the release's values, not this file.
log_level = {{ required "config.logLevel is required" $c.logLevel | toJson }}
log_format = {{ $c.logFormat | default "text" | toJson }}
cgroup_driver = {{ $c.cgroupDriver | default "cgroupfs" | toJson }}
default_runtime = {{ required "config.defaultRuntime is required" $c.defaultRuntime | toJson }}
registry_config_path = {{ $c.registry.configPath | default "/etc/berth/certs.d" | toJson }}
registry_mirrors = {{ $c.registry.mirrors | default list | toJson }}
insecure_registries = {{ $c.registry.insecure | default list | toJson }}
{{- with $c.registry.authFile }}
registry_auth_file = {{ toJson . }}
{{- end }}
cni_conf_dir = {{ $c.cni.confDir | default "/etc/cni/net.d" | toJson }}
cni_bin_dirs = {{ $c.cni.binDirs | default list | toJson }}

[streaming]
address = {{ $c.streaming.address | default "127.0.0.1" | toJson }}
port = {{ $c.streaming.port | default 0 | int }}

[metrics]
{{- if .Values.metrics.enabled }}
address = {{ printf "%s:%d" (toString .Values.metrics.bindAddress) (int .Values.metrics.port) | toJson }}
{{- else }}
address = ""
{{- end }}
[runtime_handlers]
{{- range $name, $rt := .Values.runtimes }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $name) }}
{{- fail (printf "runtimes.%s: a handler name must be a DNS label (lowercase letters, digits, '-')" $name) }}
{{- end }}
{{- $binary := required (printf "runtimes.%s.binary is required" $name) $rt.binary }}
{{- if or $rt.kind $rt.args $rt.featuresFrom }}
{{ include "berth.tomlKey" $name }} = { kind = {{ $rt.kind | default "oci" | toJson }}, binary = {{ $binary | toJson }}, args = {{ $rt.args | default list | toJson }}{{ with $rt.featuresFrom }}, features_from = {{ . | toJson }}{{ end }} }
{{- else }}
{{ include "berth.tomlKey" $name }} = {{ $binary | toJson }}
{{- end }}
{{- end }}

[cdi]
enabled = {{ .Values.cdi.enabled }}
spec_dirs = {{ .Values.cdi.specDirs | default list | toJson }}
nvidia_discovery = {{ .Values.cdi.nvidiaDiscovery }}
{{- end }}
