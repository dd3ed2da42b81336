package pqread

import (
	"errors"
	"io"

	"github.com/parquet-go/parquet-go"
)

// ColumnValues calls fn with the values of a column chunk, page by page, in
// batches of at most len(buf) (buf is reused between calls: fn must not keep
// the slice). Null values are passed too; a value whose repetition level is
// 0 starts a new row. Each page is released once read.
func ColumnValues(cc parquet.ColumnChunk, buf []parquet.Value, fn func(vals []parquet.Value)) error {
	pages := cc.Pages()
	defer pages.Close()
	for {
		p, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		err = PageValues(p, buf, fn)
		parquet.Release(p)
		if err != nil {
			return err
		}
	}
}

// PageValues calls fn with the values of one page in batches of at most
// len(buf), as ColumnValues does. It does not release the page.
func PageValues(p parquet.Page, buf []parquet.Value, fn func(vals []parquet.Value)) error {
	vr := p.Values()
	for {
		n, err := vr.ReadValues(buf)
		if n > 0 {
			fn(buf[:n])
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
