"""The evidence report: one self-contained HTML page per run (`attribcheck audit --report DIR`,
`pytest --attrib-report DIR`) that shows, per suspect, the verdict and why, and per key the
key image beside the source's and the suspect's best answers.

attribcheck.audit.recording keeps the best-seed answers while the audit runs; encode.py turns images into
data: URIs; keyview.py decides what of the key set a page may show (all, or redacted);
page.py renders the page; write.py puts it on disk.
"""
