module github.com/topohub/topohub/plugins/go

go 1.26
