/* web_assets.S: links the demo page into the binary (served at GET /). */
    .section .rodata
    .global web_index_html
    .global web_index_html_len
    .balign 16
web_index_html:
    .incbin "web/index.html"
web_index_html_end:
    .byte 0
    .balign 8
web_index_html_len:
    .quad web_index_html_end - web_index_html
    .section .note.GNU-stack,"",@progbits
