{{/* "pullguard" for a release named pullguard…, else <release>-pullguard; cut to 63 characters. */}}
{{- define "pullguard.fullname" -}}
{{- if contains "pullguard" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-pullguard" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The watch's Lease: watch.leaseName, else <fullname>-watch. The Lease Role names it (resourceNames). */}}
{{- define "pullguard.leaseName" -}}
{{- .Values.watch.leaseName | default (printf "%s-watch" (include "pullguard.fullname" .)) -}}
{{- end -}}

{{- define "pullguard.labels" -}}
app.kubernetes.io/name: pullguard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: pullguard
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "pullguard.selectorLabels" -}}
app.kubernetes.io/name: pullguard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "pullguard.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "pullguard.tlsSecretName" -}}
{{- if eq .Values.certificates.source "secret" -}}
{{- required "certificates.existingSecret is required with certificates.source=secret" .Values.certificates.existingSecret -}}
{{- else -}}
{{- printf "%s-tls" (include "pullguard.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The names the API server dials: <service>.<namespace>.svc */}}
{{- define "pullguard.dnsNames" -}}
- {{ include "pullguard.fullname" . }}.{{ .Release.Namespace }}.svc
- {{ include "pullguard.fullname" . }}.{{ .Release.Namespace }}.svc.cluster.local
{{- end -}}

{{/*
The chart's own CA and serving certificate (certificates.source=self-signed), made once per render
and shared by the Secret and the webhooks' caBundle. An installed Secret is reused, so upgrades keep
the certificate the API server already trusts.
*/}}
{{- define "pullguard.selfSignedCerts" -}}
{{- if not (hasKey .Values "__selfSignedCerts") -}}
{{- $name := printf "%s-tls" (include "pullguard.fullname" .) -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name -}}
{{- $certs := dict -}}
{{- if and $existing (index ($existing.data | default dict) "ca.crt") -}}
{{- $_ := set $certs "ca" (index $existing.data "ca.crt" | b64dec) -}}
{{- $_ := set $certs "cert" (index $existing.data "tls.crt" | b64dec) -}}
{{- $_ := set $certs "key" (index $existing.data "tls.key" | b64dec) -}}
{{- else -}}
{{- $days := int .Values.certificates.selfSigned.validityDays -}}
{{- $ca := genCA (printf "%s-ca" (include "pullguard.fullname" .)) $days -}}
{{- $fullname := include "pullguard.fullname" . -}}
{{- $dns := list (printf "%s.%s.svc" $fullname .Release.Namespace) (printf "%s.%s.svc.cluster.local" $fullname .Release.Namespace) -}}
{{- $leaf := genSignedCert (first $dns) nil $dns $days $ca -}}
{{- $_ := set $certs "ca" $ca.Cert -}}
{{- $_ := set $certs "cert" $leaf.Cert -}}
{{- $_ := set $certs "key" $leaf.Key -}}
{{- end -}}
{{- $_ := set .Values "__selfSignedCerts" $certs -}}
{{- end -}}
{{- toJson (index .Values "__selfSignedCerts") -}}
{{- end -}}

{{/* The caBundle of every webhook, base64 PEM; empty with cert-manager (cainjector fills it). */}}
{{- define "pullguard.caBundle" -}}
{{- if eq .Values.certificates.source "self-signed" -}}
{{- (include "pullguard.selfSignedCerts" . | fromJson).ca | b64enc -}}
{{- else if eq .Values.certificates.source "secret" -}}
{{- required "certificates.caBundle (the CA's PEM) is required with certificates.source=secret" .Values.certificates.caBundle | b64enc -}}
{{- end -}}
{{- end -}}

{{/* deadline in milliseconds, for the check against timeoutSeconds */}}
{{- define "pullguard.deadlineMs" -}}
{{- $d := toString .Values.deadline -}}
{{- if hasSuffix "ms" $d -}}{{ trimSuffix "ms" $d | int }}
{{- else if hasSuffix "s" $d -}}{{ mul (trimSuffix "s" $d | int) 1000 }}
{{- else -}}{{ $d | int }}
{{- end -}}
{{- end -}}
