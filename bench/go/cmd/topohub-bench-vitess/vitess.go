// SPDX-License-Identifier: Apache-2.0

package main

func cmdVSetup(args []string) int   { return 2 }
func cmdVWriter(args []string) int  { return 2 }
func cmdVSub(args []string) int     { return 2 }
func cmdVCollect(args []string) int { return 2 }
