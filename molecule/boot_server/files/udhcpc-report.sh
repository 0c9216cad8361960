#!/bin/sh
[ "$1" = bound ] && echo "ip=$ip siaddr=$siaddr boot_file=$boot_file"
exit 0
